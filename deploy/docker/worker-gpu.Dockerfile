# syntax=docker/dockerfile:1.7
# Quantplan GPU worker: AWQ and GPTQ with torch on CUDA. Build from the repository root:
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t quantplan-worker-gpu .
# PyPI's torch 2.13.0 wheel for Linux x86-64 is the CUDA 13 build (it brings its CUDA
# runtime as nvidia-* wheels), so the base image only supplies the NVIDIA container
# settings; the host needs a driver for CUDA 13 (>= 580) and the NVIDIA Container Toolkit.
# Ubuntu 24.04 ships Python 3.12 (the project supports >= 3.11).
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBIAN_FRONTEND=noninteractive \
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake python3 python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt requirements-nodeps.txt ./
# torch==2.13.0 from PyPI is the CUDA build; requirements.txt pins the same version.
# autoawq goes in without its dependencies (requirements-nodeps.txt says why).
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt \
 && python -c "import torch; assert torch.version.cuda, 'torch is not a CUDA build'"

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 \
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
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    QUANTPLAN_VAR_DIR=/app/var \
    QUANTPLAN_MEDIA_ROOT=/data/media \
    QUANTPLAN_LOCAL_MODEL_DIRS=/data/models \
    HF_HOME=/data/media/work/hf-home \
    QUANTPLAN_CACHE_DIR=/data/media/work/cache \
    TRITON_CACHE_DIR=/tmp/triton \
    CELERY_WORKER_NAME=gpu \
    QUEUES=gpu
WORKDIR /app
COPY . /app
USER 10001:10001
VOLUME ["/data/media"]
# The heartbeat reports the GPUs nvidia-smi lists (the toolkit mounts it: "utility").
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
  CMD ["python", "deploy/healthcheck.py", "worker"]
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec celery -A config worker -Q \"$QUEUES\" -c 1 -O fair -n \"$CELERY_WORKER_NAME@%h\" --without-gossip --without-mingle --loglevel INFO"]
