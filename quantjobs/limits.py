"""Resource limits of a job's child process, and the reason shown when one is hit.

Memory is sized from the planner's projection of the job's formats (the largest
format's memory plus the unquantized model the evaluation compares against) times
``QUANTPLAN_JOB_LIMIT_HEADROOM``, never below ``QUANTPLAN_JOB_MEMORY_FLOOR_BYTES``.
CPU time is ``QUANTPLAN_JOB_CPU_S_PER_GB`` seconds per GB of the unquantized
weights per format, times the same headroom, never below
``QUANTPLAN_JOB_CPU_FLOOR_S`` (a job without a projection, like the self-test,
gets the floor). The child applies both to
itself (``quantjobs.backends.child.apply_limits``); 0 turns a limit off.
"""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings

from quantjobs.models import Job

# The 16-bit reference every job loads, sized with llama.cpp's memory model (the
# only runtime the engine projects memory for).
_REFERENCE = "gguf-F16"


def job_memory_bytes(job: Job) -> int:
    """The memory limit of the job's child process, in bytes."""
    from quantjobs.projections import projection_for

    floor = int(settings.QUANTPLAN_JOB_MEMORY_FLOOR_BYTES)
    if floor <= 0:
        return 0
    largest = 0
    for fmt in job.formats:
        projected = projection_for(job, fmt)
        # Torch formats carry no memory projection (the engine does not model
        # transformers' footprint): their file size stands in for it.
        needed = projected.get("memory_bytes") or projected.get("artifact_bytes") or 0
        largest = max(largest, int(needed))
    reference = int(projection_for(job, _REFERENCE).get("memory_bytes") or 0)
    sized = int((largest + reference) * float(settings.QUANTPLAN_JOB_LIMIT_HEADROOM))
    return max(floor, sized)


def job_cpu_s(job: Job) -> int:
    """The CPU-time limit of the job's child process, in seconds."""
    from quantjobs.projections import projection_for

    floor = int(settings.QUANTPLAN_JOB_CPU_FLOOR_S)
    if floor <= 0:
        return 0
    weights_gb = int(projection_for(job, _REFERENCE).get("weights_bytes") or 0) / 1e9
    sized = (
        weights_gb
        * len(job.formats)
        * float(settings.QUANTPLAN_JOB_CPU_S_PER_GB)
        * float(settings.QUANTPLAN_JOB_LIMIT_HEADROOM)
    )
    return max(floor, int(sized))


def job_limits(job: Job) -> dict[str, int]:
    """Both limits, as the child request carries them."""
    return {"memory_bytes": job_memory_bytes(job), "cpu_s": job_cpu_s(job)}


def limit_failure(
    returncode: int | None, stderr_tail: str, limits: dict[str, Any]
) -> str | None:
    """A readable reason when the child died at one of its limits, else None."""
    cpu_s = int(limits.get("cpu_s") or 0)
    if (
        cpu_s
        and returncode in (-signal.SIGXCPU, -signal.SIGKILL)
        and (returncode == -signal.SIGXCPU or "CPU time limit" in stderr_tail)
    ):
        return (
            f"The job used its CPU-time limit ({cpu_s} s of CPU) and was stopped; "
            "use a smaller model or fewer formats, or ask the operator to raise "
            "QUANTPLAN_JOB_CPU_FLOOR_S."
        )
    memory = int(limits.get("memory_bytes") or 0)
    markers = ("bad_alloc", "Cannot allocate memory", "MemoryError", "out of memory")
    if memory and any(m in stderr_tail for m in markers):
        return (
            f"The job reached its memory limit ({memory / 1024**3:.1f} GiB, sized from "
            "its projection with headroom) and its process stopped; use a smaller "
            "model or fewer formats, or ask the operator to raise "
            "QUANTPLAN_JOB_MEMORY_FLOOR_BYTES."
        )
    return None
