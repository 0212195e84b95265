"""Accuracy-aware search: the smallest format whose measured loss stays within a bar.

As Intel Neural Compressor's tuning does with a tolerable loss: candidates are
tried one by one, smallest first, and the first whose measured loss is within
the bar is the answer (early stop: every larger one would pass too, but costs
more memory). The job runner measures; these functions order the candidates,
judge each measurement and word the outcome. Plain Python, no Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PERPLEXITY_CHANGE_PCT = "perplexity_change_pct"
KL_DIVERGENCE = "kl_divergence"
EXACT_MATCH_DROP_POINTS = "exact_match_drop_points"

# Per metric: (label, unit suffix, the largest bar that still means something).
# A perplexity change beyond +100% or a KLD beyond 5 nats is a broken model, not a
# tolerance; an exact-match drop is in points of 0-100.
METRICS: dict[str, tuple[str, str, float]] = {
    PERPLEXITY_CHANGE_PCT: ("perplexity change", "%", 100.0),
    KL_DIVERGENCE: ("KL divergence", " nats", 5.0),
    EXACT_MATCH_DROP_POINTS: ("exact-match drop", " points", 100.0),
}


class SearchError(ValueError):
    """A search request that cannot run as given; the message says what to change."""


@dataclass(frozen=True)
class SearchBar:
    """The loss a format may show at most: ``metric`` ≤ ``max_value``."""

    metric: str
    max_value: float

    @property
    def label(self) -> str:
        """'perplexity change ≤ 3%'."""
        name, unit, _ = METRICS[self.metric]
        return f"{name} ≤ {format_value(self.metric, self.max_value)}{unit}"


@dataclass(frozen=True)
class Trial:
    """One candidate measured against the bar."""

    format: str
    value: float | None  # None: the measurement could not be made
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class SearchOutcome:
    """The answer (the first candidate that passed) or the closest miss."""

    answer: str | None
    closest: str | None
    closest_value: float | None
    tried: int
    summary: str


def search_bar(metric: str, max_value: Any) -> SearchBar:
    """Validate a bar: a known metric and a finite value in [0, the metric's cap]."""
    if metric not in METRICS:
        raise SearchError(
            f"Unknown search metric {metric!r}; choose one of: {', '.join(METRICS)}."
        )
    name, unit, cap = METRICS[metric]
    try:
        value = float(max_value)
    except (TypeError, ValueError):
        raise SearchError(
            f"Give the largest {name} to accept as a number, e.g. 3."
        ) from None
    if not math.isfinite(value):
        raise SearchError(f"The {name} bar must be a finite number.")
    if value < 0:
        raise SearchError(
            f"The {name} bar is {value:g}{unit}; a loss cannot be negative. "
            f"Give a value between 0 and {cap:g}{unit}."
        )
    if value > cap:
        raise SearchError(
            f"The {name} bar is {value:g}{unit}; above {cap:g}{unit} every format "
            f"would pass, broken ones too. Give a value between 0 and {cap:g}{unit}."
        )
    return SearchBar(metric=metric, max_value=value)


def order_candidates(
    formats: Sequence[str], size_of: Callable[[str], float | None]
) -> list[str]:
    """Candidates smallest first by ``size_of`` (projected bytes, or bits per weight);
    a candidate without a size keeps its place after the sized ones. Duplicates go."""
    unique = list(dict.fromkeys(formats))
    sized: list[tuple[float, int, str]] = []
    unsized: list[str] = []
    for index, fmt in enumerate(unique):
        size = size_of(fmt)
        if size is None:
            unsized.append(fmt)
        else:
            sized.append((float(size), index, fmt))
    return [fmt for _, _, fmt in sorted(sized)] + unsized


def format_value(metric: str, value: float) -> str:
    """A measured value as the trail shows it (KLD needs more digits)."""
    if metric == KL_DIVERGENCE:
        return f"{value:.4g}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def judge(bar: SearchBar, fmt: str, value: float | None) -> Trial:
    """Whether one candidate's measured loss is within the bar, and why."""
    name, unit, _ = METRICS[bar.metric]
    limit = f"{format_value(bar.metric, bar.max_value)}{unit}"
    if value is None or not math.isfinite(value):
        why = (
            "no prompt/answer score was measured"
            if bar.metric == EXACT_MATCH_DROP_POINTS
            else f"no {name} was measured"
        )
        return Trial(fmt, None, False, f"failed: {why}")
    shown = f"{format_value(bar.metric, value)}{unit}"
    if value <= bar.max_value:
        return Trial(fmt, float(value), True, f"passed: {name} {shown} ≤ {limit}")
    return Trial(fmt, float(value), False, f"failed: {name} {shown} > {limit}")


def should_stop(trials: Iterable[Trial]) -> bool:
    """The stop rule: stop at the first candidate that passed."""
    return any(t.passed for t in trials)


def outcome(bar: SearchBar, trials: Sequence[Trial], candidates: int) -> SearchOutcome:
    """Word the end of a search: the answer, or 'no format meets it' and the closest."""
    name, unit, _ = METRICS[bar.metric]
    answer = next((t for t in trials if t.passed), None)
    measured = [t for t in trials if t.value is not None]
    closest = min(measured, key=lambda t: t.value or 0.0) if measured else None
    if answer is not None:
        assert answer.value is not None
        failed = len(trials) - 1
        summary = (
            f"{answer.format} is the smallest format within {bar.label}: "
            f"{format_value(bar.metric, answer.value)}{unit} measured. Tried "
            f"{len(trials)} of {candidates} candidates smallest first; "
            f"{failed} smaller {'one' if failed == 1 else 'ones'} failed."
        )
        return SearchOutcome(
            answer.format,
            answer.format,
            answer.value,
            len(trials),
            summary,
        )
    if closest is None or closest.value is None:
        return SearchOutcome(
            None,
            None,
            None,
            len(trials),
            f"No format meets {bar.label}: none of the {len(trials)} tried could be "
            "measured.",
        )
    return SearchOutcome(
        None,
        closest.format,
        closest.value,
        len(trials),
        f"No format meets {bar.label}: the closest of the {len(trials)} tried is "
        f"{closest.format} at {format_value(bar.metric, closest.value)}{unit}.",
    )


def loss_from_metrics(metric: str, metrics: Mapping[str, Any]) -> float | None:
    """The loss ``metric`` of one measured result (the worker's metrics dict)."""
    if metric == PERPLEXITY_CHANGE_PCT:
        ppl, base = metrics.get("perplexity"), metrics.get("base_perplexity")
        if not isinstance(ppl, (int, float)) or not isinstance(base, (int, float)):
            return None
        return (ppl - base) / base * 100.0 if base > 0 else None
    if metric == KL_DIVERGENCE:
        kld = metrics.get("kl_divergence")
        return float(kld) if isinstance(kld, (int, float)) else None
    if metric == EXACT_MATCH_DROP_POINTS:
        task = metrics.get("task") or {}
        drop = (task.get("exact_match_drop") or {}).get("points")
        return float(drop) if isinstance(drop, (int, float)) else None
    return None
