"""Where a plan's numbers come from: the ledger's rule, applied row by row.

Speed is the roofline refitted by the device's calibration when the ledger has
enough runs for that device, engine and format family; quality, size and memory
are measured only for the very model and format (and, for memory, the very device
and context) that were measured; everything else is labelled an estimate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .calibration import (
    ESTIMATED_MEMORY,
    ESTIMATED_SIZE,
    Efficiency,
    FormatMeasurement,
    calibrated,
)
from .formats import FormatSpec
from .quality import MEASURED, QualityLoss, expected_quality_loss, quality_family
from .request import PlanRequest
from .speed import SpeedEstimate
from .tensors import parameter_breakdown


def calibrated_speed(
    speed: SpeedEstimate, prompt: Efficiency | None, generation: Efficiency | None
) -> tuple[SpeedEstimate, str, str]:
    """The roofline speed refitted by this device's ledger, and the two labels."""
    prefill, prompt_label = calibrated(speed.prefill_tokens_per_s, prompt)
    decode, generation_label = calibrated(speed.decode_tokens_per_s, generation)
    pp = prompt.factor if prompt is not None else 1.0
    tg = generation.factor if generation is not None else 1.0
    return (
        dataclasses.replace(
            speed,
            prefill_tokens_per_s=prefill,
            ttft_s=speed.ttft_s / pp,
            decode_tokens_per_s=decode,
            total_decode_tokens_per_s=speed.total_decode_tokens_per_s * tg,
            decode_step_s=speed.decode_step_s / tg,
        ),
        prompt_label,
        generation_label,
    )


def quality_with_label(
    req: PlanRequest,
    fmt: FormatSpec,
    measurement: FormatMeasurement | None,
    legacy: Mapping[str, Any] | None = None,
) -> QualityLoss:
    """Measured quality of this very model and format, else the published prior
    for its family and size; ``label`` says which. ``legacy`` is a measurement
    passed the older way (``PlanRequest.measured``)."""
    if measurement is not None and measurement.perplexity_increase_pct is not None:
        legacy = {
            "perplexity_increase_pct": measurement.perplexity_increase_pct,
            "kl_divergence": measurement.kl_divergence,
            "source": measurement.source,
        }
    spec = req.model
    quality = expected_quality_loss(
        fmt,
        measured=legacy,
        family=quality_family(spec.model_id, spec.name, spec.model_type),
        parameters=parameter_breakdown(spec).total,
    )
    if quality["kind"] == MEASURED:
        quality["label"] = f"measured ({quality['source']})"
    elif quality.get("perplexity_increase_pct") is None:
        quality["label"] = f"not estimated ({quality['source']})"
    else:
        quality["label"] = f"estimated (published: {quality['source']})"
    return quality


def size_and_memory_sources(
    req: PlanRequest,
    measurement: FormatMeasurement | None,
    *,
    engine: str,
    gpus: int,
) -> dict[str, str]:
    """Labels for the file size and the memory per GPU of one row."""
    out = {"artifact_bytes": ESTIMATED_SIZE, "total_bytes_per_gpu": ESTIMATED_MEMORY}
    if measurement is None:
        return out
    if measurement.artifact_bytes:
        out["artifact_bytes"] = f"measured ({measurement.source})"
    # A peak RSS stands for the plan's memory only where it was taken: the same
    # device, llama.cpp, one sequence at the same context.
    if (
        measurement.memory_bytes
        and req.device_key
        and measurement.device == req.device_key
        and engine == "llama.cpp"
        and gpus == 1
        and req.concurrency == 1
        and measurement.memory_context_tokens == req.context_tokens
    ):
        out["total_bytes_per_gpu"] = f"measured ({measurement.source}, peak RSS)"
    return out
