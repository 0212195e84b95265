"""A worker announces its GPU (from nvidia-smi) and its queue; the API lists it.

This machine has no GPU, so a fake ``nvidia-smi`` stands in for the driver's: it
answers the worker's query the way the real one does on an H100. Everything else is
real: the Celery worker process, Redis, the database row and the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
H100_MIB = 81559


def _fake_nvidia_smi(folder: Path) -> Path:
    script = folder / "nvidia-smi"
    # The real tool, asked --query-gpu=name,memory.total --format=csv,noheader,nounits.
    script.write_text(f'#!/bin/sh\necho "NVIDIA H100 80GB HBM3, {H100_MIB}"\n')
    script.chmod(0o755)
    return folder


@pytest.mark.slow
@pytest.mark.worker
def test_a_gpu_worker_announces_its_gpu_and_queue(
    start_worker: Any, api: Any, tmp_path: Path, redis_url: str
) -> None:
    from quantjobs.models import WorkerHeartbeat

    bin_dir = _fake_nvidia_smi(tmp_path)
    worker = start_worker("gpu", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    row = wait_for(
        lambda: WorkerHeartbeat.objects.filter(
            hostname__startswith="test-gpu@"
        ).first(),
        timeout_s=60,
    )

    gpus = [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": H100_MIB * 1024 * 1024}]
    assert row.queues == ["gpu"]
    assert row.capabilities["gpus"] == gpus
    assert {"awq", "gptq"} <= set(row.capabilities["methods"])

    response = api.get("/api/v1/workers/")
    assert response.status_code == 200
    (listed,) = [w for w in response.json() if w["hostname"] == row.hostname]
    assert listed["queues"] == ["gpu"]
    assert listed["capabilities"]["gpus"] == gpus

    # The container health check pings this very worker through the broker.
    check = subprocess.run(
        [sys.executable, "deploy/healthcheck.py", "worker"],
        cwd=ROOT, env={**worker.env, "CELERY_WORKER_NAME": "test-gpu"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
@pytest.mark.worker
def test_a_worker_without_nvidia_smi_announces_no_gpu(
    start_worker: Any, tmp_path: Path, redis_url: str
) -> None:
    from quantjobs.models import WorkerHeartbeat

    # A PATH with python's folder and the system's, but no nvidia-smi anywhere.
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    start_worker("cpu", PATH=path)

    row = wait_for(
        lambda: WorkerHeartbeat.objects.filter(
            hostname__startswith="test-cpu@"
        ).first(),
        timeout_s=60,
    )

    assert row.queues == ["cpu"] and row.capabilities["gpus"] == []
    assert "awq" not in row.capabilities["methods"]
