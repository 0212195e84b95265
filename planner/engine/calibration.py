"""Refit the engine from measurements: an efficiency per (device, engine, format family).

The roofline speed model uses round efficiency factors from public benchmarks.
Once a device has been measured often enough, the median of measured/roofline
over those runs replaces the default for that device, engine and format family.
Every value carries where it comes from: ``estimated`` (roofline defaults) or
``calibrated`` (from ``n`` runs).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_RUNS = 3  # fewer runs leave the roofline default in place
ESTIMATED = "estimated"
CALIBRATED = "calibrated"


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Measured over roofline for one (device, engine, format family, quantity)."""

    factor: float  # median of measured / roofline
    runs: int
    low: float  # smallest ratio seen
    high: float  # largest ratio seen

    @property
    def label(self) -> str:
        """How a projection that uses it is labelled."""
        return f"{CALIBRATED} from {self.runs} runs"


def fit_efficiency(
    ratios: Sequence[float], *, min_runs: int = MIN_RUNS
) -> Efficiency | None:
    """The efficiency the ratios support, or None when there are too few of them."""
    usable = [float(r) for r in ratios if r > 0 and r == r and r != float("inf")]
    if len(usable) < max(1, min_runs):
        return None
    return Efficiency(
        factor=float(statistics.median(usable)),
        runs=len(usable),
        low=min(usable),
        high=max(usable),
    )


def calibrated(roofline: float, efficiency: Efficiency | None) -> tuple[float, str]:
    """The value to show for a roofline projection, and its label."""
    if efficiency is None:
        return roofline, f"{ESTIMATED} (roofline, default efficiency)"
    return roofline * efficiency.factor, efficiency.label


def error_stats(errors_pct: Sequence[float]) -> dict[str, float | int | None]:
    """n, median, p90 of |error| and the worst error (signed), in %."""
    values = [float(e) for e in errors_pct]
    if not values:
        return {"n": 0, "median_pct": None, "p90_abs_pct": None, "worst_pct": None}
    absolute = sorted(abs(v) for v in values)
    # Nearest-rank percentile: the value below which 90% of the errors lie.
    rank = max(0, min(len(absolute) - 1, -(-9 * len(absolute) // 10) - 1))
    return {
        "n": len(values),
        "median_pct": float(statistics.median(values)),
        "p90_abs_pct": absolute[rank],
        "worst_pct": max(values, key=abs),
    }


# -- What plans receive from the ledger (plain data; the engine never queries) --

SPEED_QUANTITIES = ("prompt_tokens_per_s", "generation_tokens_per_s")
ESTIMATED_SPEED = f"{ESTIMATED} (roofline, default efficiency)"
ESTIMATED_SIZE = f"{ESTIMATED} (llama.cpp / safetensors size rules)"
ESTIMATED_MEMORY = f"{ESTIMATED} (memory model)"


@dataclass(frozen=True, slots=True)
class SpeedCalibration:
    """A fitted efficiency for one (device, engine, format family, speed quantity)."""

    device: str  # the ledger's device key (a worker's fingerprint)
    engine: str  # the ledger's engine name, see :func:`ledger_engine`
    format_family: str
    quantity: str  # "prompt_tokens_per_s" or "generation_tokens_per_s"
    efficiency: Efficiency


@dataclass(frozen=True, slots=True)
class FormatMeasurement:
    """What one job measured for one model in one format (quality, size, memory)."""

    model_id: str
    format: str  # a format id, as parse_format gives it
    source: str  # where it was measured, e.g. "your job 12"
    perplexity_increase_pct: float | None = None
    kl_divergence: float | None = None
    artifact_bytes: int | None = None
    memory_bytes: int | None = None  # peak RSS of a fresh serving process
    memory_context_tokens: int | None = None  # the context it was loaded with
    device: str = ""  # the ledger's device key of the machine that measured it


def ledger_engine(engine: str, device_kind: str) -> str:
    """The ledger's name for a plan's engine on a kind of device."""
    if engine == "llama.cpp":
        return "llama.cpp on CPU" if device_kind == "cpu" else "llama.cpp on GPU"
    return engine


def speed_calibration_for(
    calibrations: Sequence[SpeedCalibration],
    *,
    device: str,
    engine: str,
    format_family: str,
    quantity: str,
    min_runs: int = MIN_RUNS,
) -> Efficiency | None:
    """The efficiency that applies to a plan row, or None (the roofline default).

    Only a fit for the very device, engine and format family counts, and only
    with ``min_runs`` runs or more: one machine never calibrates another.
    """
    if not device:
        return None
    for cal in calibrations:
        if (
            cal.device == device
            and cal.engine == engine
            and cal.format_family == format_family
            and cal.quantity == quantity
            and cal.efficiency.runs >= min_runs
        ):
            return cal.efficiency
    return None


def measurement_for(
    measurements: Sequence[FormatMeasurement], *, model_id: str, format_id: str
) -> FormatMeasurement | None:
    """The latest measurement of this very model in this very format, if any.

    A measurement of another model never stands in for this one.
    """
    found = None
    for m in measurements:
        if m.model_id and m.model_id == model_id and m.format == format_id:
            found = m  # later entries are newer
    return found
