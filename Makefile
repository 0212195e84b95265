# Quantplan: `make run` installs what is missing and runs the product; `make test` runs
# every test. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt requirements-dev.txt deploy/llama-cpp-wheel.sh | sha256sum | cut -c1-12)

.PHONY: install run worker test test-fast lint bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt deploy/llama-cpp-wheel.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	# llama-cpp-python compiles once per CPU's instruction sets (minutes), cached after.
	bash deploy/llama-cpp-wheel.sh $(PY)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	# Browser tests drive Debian's Chromium (Playwright never downloads a browser).
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "NOTE: install Debian's chromium for the browser tests (apt-get install chromium)"
	rm -f $(VENV)/.installed-*
	touch $@

run: install
	$(PY) manage.py up

worker: install
	$(PY) -m celery -A config worker -Q $${QUEUES:-cpu} -c 1 -O fair --loglevel INFO

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (quantization, browser, fault injection).
test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf var test-output .pytest_cache
