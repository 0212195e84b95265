"""The planner's projection for a job's format, to stand beside what was measured."""

from __future__ import annotations

import logging
from typing import Any

from quantjobs.models import Job

logger = logging.getLogger(__name__)

EVAL_CONTEXT_TOKENS = 512
CPU_DEVICE_ID = "cpu-generic-ddr5"


def projection_for(job: Job, fmt: str) -> dict[str, Any]:
    """Projected artifact size and memory for ``fmt`` of the job's model, if known."""
    if job.method == Job.Method.SELFTEST or not job.model_id:
        return {}
    from planner.engine import artifact_bytes, estimate_memory, parse_format
    from planner.engine.catalog import get_gpu, get_model

    try:
        spec = get_model(job.model_id).spec
        parsed = parse_format(fmt)
        context = int(job.options.get("context_tokens", EVAL_CONTEXT_TOKENS))
        # The worker measures the model loaded alone in llama.cpp (GGUF) or torch on
        # its CPU, one sequence at the evaluation context: project the same thing.
        memory = estimate_memory(
            spec,
            parsed,
            get_gpu(CPU_DEVICE_ID),
            engine="llama.cpp",
            gpus=1,
            context_tokens=context,
            sequences=1,
        )
        return {
            "model_id": job.model_id,
            "artifact_bytes": artifact_bytes(spec, parsed),
            "weights_bytes": memory.weights_bytes_per_gpu,
            "kv_cache_bytes": memory.kv_cache_bytes_per_gpu,
            "memory_bytes": memory.total_bytes_per_gpu,
            "context_tokens": context,
            "engine": "llama.cpp on CPU",
        }
    except Exception:  # a projection must never fail the job it describes
        logger.warning("no projection for %s %s", job.model_id, fmt, exc_info=True)
        return {}


def compare(projected: float | None, measured: float | None) -> float | None:
    """Difference of measured from projected, in % of the projection."""
    if not projected or measured is None:
        return None
    return round((measured - projected) / projected * 100.0, 2)
