# syntax=docker/dockerfile:1.7
# Quantplan web: Django + DRF behind gunicorn. Build from the repository root:
#   docker build -f deploy/docker/web.Dockerfile -t quantplan-web .
# The web never imports torch or llama_cpp, but it installs the same pinned
# requirements as the CPU worker so that both images run one tested set of versions
# (and share these layers when built on one host).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    # A portable llama.cpp build: no -march=native, so the image runs on any x86-64 host.
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt requirements-nodeps.txt ./
# torch from PyTorch's CPU index first: the PyPI wheel is the multi-GB CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu \
 && pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt

FROM ${PYTHON_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 quantplan \
 && useradd --system --uid 10001 --gid quantplan --create-home --home-dir /home/quantplan --shell /usr/sbin/nologin quantplan \
 && mkdir -p /data/media /data/models \
 && chown -R 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/quantplan \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    QUANTPLAN_VAR_DIR=/app/var \
    QUANTPLAN_MEDIA_ROOT=/data/media \
    QUANTPLAN_LOCAL_MODEL_DIRS=/data/models \
    PORT=8000
WORKDIR /app
COPY . /app
# Static files are part of the image (WhiteNoise serves them); collectstatic needs no
# secrets, so it runs with the local settings, which share STATIC_ROOT and STORAGES.
RUN DJANGO_SETTINGS_MODULE=config.settings.local python manage.py collectstatic --noinput -v 0
USER 10001:10001
EXPOSE 8000
VOLUME ["/data/media"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "deploy/healthcheck.py", "web"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi:application"]
