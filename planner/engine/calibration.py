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
