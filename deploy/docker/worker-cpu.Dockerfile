# syntax=docker/dockerfile:1.7
# Quantplan CPU worker: GGUF quantization with llama-cpp-python, baselines, evaluation.
# Build from the repository root:
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t quantplan-worker-cpu .
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
# The llama-cpp-python sdist the wheel was built from: llama.cpp's HF -> GGUF
# converter is taken from it (quantjobs/backends/gguf/llama_cpp_source.py).
RUN pip download --no-deps --no-binary :all: -d /opt/llama-cpp-sdist \
    "llama-cpp-python==$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' requirements.txt)"

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
COPY --from=build /opt/llama-cpp-sdist /opt/llama-cpp-sdist
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/quantplan \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    QUANTPLAN_VAR_DIR=/app/var \
    QUANTPLAN_MEDIA_ROOT=/data/media \
    QUANTPLAN_LOCAL_MODEL_DIRS=/data/models \
    HF_HOME=/data/media/work/hf-home \
    QUANTPLAN_CACHE_DIR=/data/media/work/cache \
    QUANTPLAN_LLAMA_CPP_SDIST=/opt/llama-cpp-sdist \
    CELERY_WORKER_NAME=cpu \
    QUEUES=cpu
WORKDIR /app
COPY . /app
USER 10001:10001
VOLUME ["/data/media"]
# The heartbeat thread also reaps jobs of dead workers: no separate beat process.
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
  CMD ["python", "deploy/healthcheck.py", "worker"]
# Warm shutdown on SIGTERM: the running job finishes (or is requeued by the reaper).
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec celery -A config worker -Q \"$QUEUES\" -c 1 -O fair -n \"$CELERY_WORKER_NAME@%h\" --without-gossip --without-mingle --loglevel INFO"]
