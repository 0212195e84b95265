"""The planner's projection for a job's format, to stand beside what was measured."""

from __future__ import annotations

import logging
from typing import Any

from quantjobs.models import Job

logger = logging.getLogger(__name__)

EVAL_CONTEXT_TOKENS = 512


def projection_for(job: Job, fmt: str) -> dict[str, Any]:
    """Projected artifact size and memory for ``fmt`` of the job's model, if known."""
    if job.method == Job.Method.SELFTEST or not job.model_id:
        return {}
    from planner.engine import (
        artifact_bytes,
        kv_cache_bytes,
        parse_format,
        weights_bytes,
    )
    from planner.engine.catalog import get_model

    try:
        spec = get_model(job.model_id).spec
        parsed = parse_format(fmt)
        context = int(job.options.get("context_tokens", EVAL_CONTEXT_TOKENS))
        weights = weights_bytes(spec, parsed)
        kv = kv_cache_bytes(spec, context_tokens=context, sequences=1)
        return {
            "model_id": job.model_id,
            "artifact_bytes": artifact_bytes(spec, parsed),
            "weights_bytes": weights,
            "kv_cache_bytes": kv,
            "memory_bytes": weights + kv,
            "context_tokens": context,
        }
    except Exception:  # a projection must never fail the job it describes
        logger.warning("no projection for %s %s", job.model_id, fmt, exc_info=True)
        return {}


def compare(projected: float | None, measured: float | None) -> float | None:
    """Difference of measured from projected, in % of the projection."""
    if not projected or measured is None:
        return None
    return round((measured - projected) / projected * 100.0, 2)
