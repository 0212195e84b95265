"""The planner's projection for a job's format, to stand beside what was measured."""

from __future__ import annotations

import logging
from typing import Any

from quantjobs.models import Job

logger = logging.getLogger(__name__)

EVAL_CONTEXT_TOKENS = 512
CPU_DEVICE_ID = "cpu-generic-ddr5"


def job_model_spec(job: Job) -> tuple[Any, str]:
    """(ModelSpec or None, where it came from or why there is none) for a job's source."""
    from planner.engine import CatalogError
    from planner.engine.catalog import get_model
    from quantjobs.modelspec import ModelSpecError, spec_from_json

    stored = job.model_spec or {}
    if stored and "error" not in stored:
        try:
            return spec_from_json(stored), str(stored.get("source") or "source model")
        except ModelSpecError as exc:
            logger.warning("job %s: stored spec unreadable: %s", job.pk, exc)
    if job.model_id:
        try:
            return get_model(job.model_id).spec, f"catalog {job.model_id}"
        except CatalogError:
            pass
    return None, str(stored.get("error") or "the source model's shape is not known")


def projection_for(job: Job, fmt: str) -> dict[str, Any]:
    """Projected artifact size and memory for ``fmt`` of the job's model, if known."""
    if job.method == Job.Method.SELFTEST:
        return {}
    from planner.engine import (
        artifact_bytes,
        estimate_memory,
        estimate_speed,
        parse_format,
    )
    from planner.engine.catalog import get_gpu

    spec, source = job_model_spec(job)
    if spec is None:
        return {"unavailable": f"No projection: {source}"}
    try:
        parsed = parse_format(fmt)
        context = int(job.options.get("context_tokens", EVAL_CONTEXT_TOKENS))
        # The worker measures the model loaded alone in llama.cpp (GGUF) or torch on
        # its CPU, one sequence at the evaluation context: project the same thing.
        cpu = get_gpu(CPU_DEVICE_ID)
        memory = estimate_memory(
            spec,
            parsed,
            cpu,
            engine="llama.cpp",
            gpus=1,
            context_tokens=context,
            sequences=1,
        )
        speed = estimate_speed(
            spec,
            parsed,
            cpu,
            engine="llama.cpp",
            gpus=1,
            concurrency=1,
            prompt_tokens=context // 2,
            output_tokens=context - context // 2,
        )
        return {
            "model_id": job.model_id or spec.model_id,
            "model_name": spec.name,
            "spec_source": source,
            "artifact_bytes": artifact_bytes(spec, parsed),
            "weights_bytes": memory.weights_bytes_per_gpu,
            "kv_cache_bytes": memory.kv_cache_bytes_per_gpu,
            "memory_bytes": memory.total_bytes_per_gpu,
            "prompt_tokens_per_s": round(speed.prefill_tokens_per_s, 2),
            "generation_tokens_per_s": round(speed.decode_tokens_per_s, 2),
            "context_tokens": context,
            "engine": "llama.cpp on CPU",
            "device": CPU_DEVICE_ID,
        }
    except Exception:  # a projection must never fail the job it describes
        logger.warning("no projection for %s %s", spec.model_id, fmt, exc_info=True)
        return {}


def compare(projected: float | None, measured: float | None) -> float | None:
    """Difference of measured from projected, in % of the projection."""
    if not projected or measured is None:
        return None
    return round((measured - projected) / projected * 100.0, 2)
