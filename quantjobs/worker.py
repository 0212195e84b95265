"""What a worker does beside running jobs: announce itself, and reap dead jobs.

A daemon thread in each worker's main process writes a ``WorkerHeartbeat`` row
(host, queues, CPU and GPU) and requeues jobs whose worker died. It runs in the
main process, so a long job in the pool never delays it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from typing import Any

import psutil
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

INTERVAL_S = float(os.environ.get("QUANTPLAN_HEARTBEAT_INTERVAL_S", "15"))
_stop = threading.Event()


def detect_gpus() -> list[dict[str, Any]]:
    """GPUs on this host from nvidia-smi (no torch import in the worker's main process)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem_mib = line.partition(",")
        try:
            memory_bytes = int(float(mem_mib.strip()) * 1024 * 1024)
        except ValueError:
            memory_bytes = 0
        gpus.append({"name": name.strip(), "memory_bytes": memory_bytes})
    return gpus


def capabilities() -> dict[str, Any]:
    """What this host can run: CPU, memory, GPUs, and the methods that follow."""
    gpus = detect_gpus()
    methods = ["gguf", "rtn", "selftest"] + (
        ["awq", "gptq"] if gpus else ["awq (small models)", "gptq (small models)"]
    )
    return {
        "cpu_count": os.cpu_count() or 1,
        "memory_bytes": psutil.virtual_memory().total,
        "gpus": gpus,
        "methods": methods,
    }


def worker_fingerprint(threads: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """CPU model, cores a job uses, llama.cpp's instruction sets, measured bandwidth.

    Measured in a child process (the worker's main process never imports
    llama_cpp); the GPUs come from :func:`detect_gpus`. An empty dict when the
    child fails: a worker without a fingerprint still runs jobs.
    """
    import json
    import sys

    from django.conf import settings

    try:
        out = subprocess.run(
            [sys.executable, "-m", "quantjobs.backends.fingerprint", str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
            cwd=str(settings.BASE_DIR),
        ).stdout
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        logger.warning("worker fingerprint failed", exc_info=True)
        return {}
    gpus = detect_gpus()
    if gpus:
        data["gpu_name"] = gpus[0]["name"]
        data["gpu_memory_bytes"] = gpus[0]["memory_bytes"]
    return data


def beat(hostname: str, queues: list[str], caps: dict[str, Any]) -> None:
    """Record that this worker is alive, and reap jobs of workers that are not."""
    from quantjobs.models import WorkerHeartbeat
    from quantjobs.services import jobs_reap_stale

    close_old_connections()
    try:
        WorkerHeartbeat.objects.update_or_create(
            hostname=hostname,
            defaults={
                "queues": queues,
                "capabilities": caps,
                "last_seen_at": timezone.now(),
            },
        )
        jobs_reap_stale(reaper=hostname)
    except Exception:
        logger.warning("worker heartbeat failed", exc_info=True)


def start_heartbeat(hostname: str, queues: list[str]) -> threading.Thread:
    """Start the heartbeat thread of this worker process."""
    from django.conf import settings

    caps = capabilities()

    def loop() -> None:
        # Announce at once, then again with the fingerprint (seconds to measure).
        beat(hostname, queues, caps)
        caps["fingerprint"] = worker_fingerprint(settings.QUANTPLAN_WORKER_THREADS)
        while not _stop.is_set():
            beat(hostname, queues, caps)
            _stop.wait(INTERVAL_S)

    thread = threading.Thread(target=loop, name="quantplan-heartbeat", daemon=True)
    thread.start()
    return thread


def stop_heartbeat() -> None:
    """Stop the heartbeat thread."""
    _stop.set()
