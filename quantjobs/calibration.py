"""The calibration ledger: every (projected, measured) pair, and what it teaches.

Writes (``calibration_record_result``) run when a result is published; reads
summarise the error of each quantity and fit the speed efficiency of a device
(``speed_efficiency``) that the next projection for that device uses.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from planner.engine.quality import perplexity_change_pct
from quantjobs.models import CalibrationRecord, JobResult

logger = logging.getLogger(__name__)

Quantity = CalibrationRecord.Quantity
SPEED_QUANTITIES = (Quantity.PROMPT_TOKENS_PER_S, Quantity.GENERATION_TOKENS_PER_S)


def device_key(fingerprint: dict[str, Any] | None) -> str:
    """A stable name for the hardware a measurement ran on (CPU, threads, build)."""
    from planner.engine.device import device_key as engine_device_key

    return engine_device_key(fingerprint)


def _model_facts(model_id: str) -> tuple[str, int | None]:
    if not model_id:
        return "", None
    try:
        from planner.engine.catalog import get_model
        from planner.engine.tensors import parameter_breakdown

        entry = get_model(model_id)
        return entry.family, int(parameter_breakdown(entry.spec).total)
    except Exception:  # an unknown model still gets its records, unlabelled
        return "", None


def _published_ppl_change(fmt: str, model_id: str = "") -> float | None:
    """The prior a plan of this model would show: its family's, at its size."""
    try:
        from planner.engine.quality import expected_quality_loss, quality_family

        architecture, parameters = _model_facts(model_id)
        value = expected_quality_loss(
            fmt,
            family=quality_family(model_id, "", architecture),
            parameters=parameters,
        ).get("perplexity_increase_pct")
        return float(value) if value is not None else None
    except Exception:
        return None


def _pairs(result: JobResult) -> list[dict[str, Any]]:
    metrics = result.metrics or {}
    projection = result.projection or {}
    pairs: list[dict[str, Any]] = []

    def add(
        quantity: str,
        projected: Any,
        measured: Any,
        basis: str = "",
        baseline: Any = None,
    ) -> None:
        if measured is None:
            return
        pairs.append(
            {
                "quantity": quantity,
                "projected": float(projected) if projected is not None else None,
                "measured": float(measured),
                "projection_basis": basis[:200],
                "baseline": float(baseline) if baseline is not None else None,
            }
        )

    size = result.artifact.size_bytes if result.artifact else None
    add(Quantity.ARTIFACT_BYTES, projection.get("artifact_bytes"), size, "estimated")
    add(
        Quantity.MEMORY_BYTES,
        projection.get("memory_bytes"),
        metrics.get("peak_memory_bytes"),
        "estimated" if projection.get("memory_bytes") else "",
    )
    for quantity in SPEED_QUANTITIES:
        add(
            quantity,
            projection.get(str(quantity)),
            metrics.get(str(quantity)),
            str(
                projection.get(
                    "prompt_speed_basis"
                    if quantity == Quantity.PROMPT_TOKENS_PER_S
                    else "speed_basis"
                )
                or projection.get("speed_basis")
                or ""
            ),
            projection.get(f"roofline_{quantity}"),
        )
    add(
        Quantity.PERPLEXITY_CHANGE_PCT,
        _published_ppl_change(result.format, result.job.model_id),
        perplexity_change_pct(
            metrics.get("perplexity"), metrics.get("base_perplexity")
        ),
        "published",
    )
    add(Quantity.KL_DIVERGENCE, None, metrics.get("kl_divergence"))
    drop = ((metrics.get("task") or {}).get("exact_match_drop") or {}).get("points")
    add(Quantity.EXACT_MATCH_DROP_POINTS, None, drop)
    return pairs


def calibration_record_result(*, result: JobResult) -> list[CalibrationRecord]:
    """Store every (projected, measured) pair of a published result in the ledger."""
    from planner.engine import parse_format

    job = result.job
    fingerprint = (result.projection or {}).get("fingerprint") or {}
    family, parameters = _model_facts(job.model_id)
    try:
        format_family = parse_format(result.format).family
    except Exception:
        format_family = ""
    engine = str((result.projection or {}).get("engine") or "")
    if not engine:
        engine = "llama.cpp on CPU" if format_family == "gguf" else "torch"
    records = []
    for pair in _pairs(result):
        record, _ = CalibrationRecord.objects.update_or_create(
            result=result,
            quantity=pair["quantity"],
            defaults={
                **pair,
                "user": job.user,
                "device_key": device_key(fingerprint),
                "fingerprint": fingerprint,
                "engine": engine,
                "model_id": job.model_id,
                "model_family": family,
                "parameter_count": parameters,
                "format": result.format,
                "format_family": format_family,
            },
        )
        records.append(record)
    return records


def speed_efficiency(
    *, device: str, engine: str, format_family: str, quantity: str
) -> Any:
    """The fitted efficiency (planner.engine.calibration.Efficiency) or None."""
    from planner.engine.calibration import fit_efficiency

    if not device:
        return None
    rows = CalibrationRecord.objects.filter(
        device_key=device,
        engine=engine,
        format_family=format_family,
        quantity=quantity,
        baseline__gt=0,
    ).values_list("measured", "baseline")
    return fit_efficiency([m / b for m, b in rows])


def speed_calibrations(*, device: str, engine: str) -> list[Any]:
    """Every speed efficiency the ledger supports for one device and engine
    (``planner.engine.calibration.SpeedCalibration``), for plans."""
    from planner.engine.calibration import SpeedCalibration, fit_efficiency

    if not device:
        return []
    ratios: dict[tuple[str, str], list[float]] = {}
    rows = CalibrationRecord.objects.filter(
        device_key=device,
        engine=engine,
        quantity__in=[str(q) for q in SPEED_QUANTITIES],
        baseline__gt=0,
    ).values_list("format_family", "quantity", "measured", "baseline")
    for family, quantity, measured, baseline in rows:
        ratios.setdefault((family, quantity), []).append(measured / baseline)
    found = []
    for (family, quantity), values in sorted(ratios.items()):
        efficiency = fit_efficiency(values)
        if efficiency is not None:
            found.append(
                SpeedCalibration(
                    device=device,
                    engine=engine,
                    format_family=family,
                    quantity=quantity,
                    efficiency=efficiency,
                )
            )
    return found


def calibration_records_for_user(*, user: AbstractBaseUser) -> Any:
    """The user's ledger rows, newest first."""
    return (
        CalibrationRecord.objects.filter(user=user)
        .select_related("result__job")
        .order_by("-created_at")
    )


def calibration_summary_for_user(*, user: AbstractBaseUser) -> list[dict[str, Any]]:
    """Per quantity: n, median error, p90 |error|, worst, and the chart's points."""
    from planner.engine.calibration import error_stats

    summary = []
    records = list(calibration_records_for_user(user=user))
    for quantity, label in Quantity.choices:
        rows = [r for r in records if r.quantity == quantity]
        paired = [r for r in rows if r.error_pct is not None]
        stats = error_stats([r.error_pct for r in paired if r.error_pct is not None])
        summary.append(
            {
                "quantity": quantity,
                "label": label,
                "measurements": len(rows),
                **stats,
                "points": [
                    {
                        "projected": r.projected,
                        "measured": r.measured,
                        "format": r.format,
                        "basis": r.projection_basis,
                        "device": r.device_key,
                    }
                    for r in paired
                ],
            }
        )
    return summary
