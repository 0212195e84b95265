"""Pick a format: the cheapest per token among those that fit and meet the limits,
and the Pareto front of quality loss against cost per token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .quality import DEFAULT_MAX_QUALITY_LOSS_PCT as DEFAULT_MAX_QUALITY_LOSS_PCT
from .quality import exceeds_quality_limit, quality_limit_pct

if TYPE_CHECKING:
    from .plan import PlanResult

# Head of ``Recommendation.why_none`` when every format was rejected.
NO_FORMAT_MEETS_LIMITS = "no format fits and meets the limits"
# How many rejected formats ``why_none`` and ``rejected`` list at most.
MAX_REJECTIONS_LISTED = 12
# Costs within this share of the cheapest count as a tie, won by better quality.
COST_TIE_FRACTION = 0.02


@dataclass(frozen=True)
class Limits:
    """The user's limits; None means no limit."""

    max_quality_loss_pct: float | None = None
    min_tokens_per_s: float | None = None
    max_ttft_s: float | None = None


@dataclass(frozen=True)
class Reason:
    """One reason a format was rejected: a stable code, a sentence and its numbers.

    Codes: ``does_not_fit``, ``no_quality_estimate``, ``quality_above_limit``,
    ``speed_below_limit``, ``ttft_above_limit``. ``value`` and ``limit`` are in
    ``unit`` (``%``, ``tokens/s``, ``s``) and None where the reason has no number.
    """

    code: str
    message: str
    value: float | None = None
    limit: float | None = None
    unit: str = ""

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {
            "code": self.code,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class Rejection:
    """A format that was not recommended, with every reason why."""

    format: str
    reasons: tuple[Reason, ...]

    @property
    def message(self) -> str:
        """One line: ``format: reason; reason``."""
        return f"{self.format}: " + "; ".join(r.message for r in self.reasons)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {
            "format": self.format,
            "message": self.message,
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Recommendation:
    """The recommended format with reasons, or None with why.

    ``why_none`` is one readable sentence (kept for API users that read it);
    ``rejected`` holds the same rejections as structured objects for pages."""

    format: str | None
    reasons: list[str] = field(default_factory=list)
    why_none: str | None = None
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {
            "format": self.format,
            "reasons": list(self.reasons),
            "why_none": self.why_none,
            "rejected": [r.to_dict() for r in self.rejected],
        }


def cost_key(c: PlanResult) -> float:
    """Cost per million tokens, or GPUs per token/s when no price is known."""
    if c.cost_usd_per_million_tokens is not None:
        return c.cost_usd_per_million_tokens
    return (
        c.gpus / c.total_decode_tokens_per_s
        if c.total_decode_tokens_per_s > 0
        else (float("inf"))
    )


def _limit_failures(c: PlanResult, limits: Limits) -> list[Reason]:
    out: list[Reason] = []
    q = c.quality_loss_pct
    max_q = quality_limit_pct(limits.max_quality_loss_pct)
    if q is None:
        out.append(Reason("no_quality_estimate", "no quality estimate"))
    elif exceeds_quality_limit(q, limits.max_quality_loss_pct):
        out.append(
            Reason(
                "quality_above_limit",
                f"perplexity +{q:.1f}% is above the {max_q:g}% limit",
                q,
                max_q,
                "%",
            )
        )
    if (
        limits.min_tokens_per_s is not None
        and c.decode_tokens_per_s < limits.min_tokens_per_s
    ):
        out.append(
            Reason(
                "speed_below_limit",
                f"{c.decode_tokens_per_s:.1f} tokens/s per sequence is below "
                f"{limits.min_tokens_per_s:g}",
                c.decode_tokens_per_s,
                limits.min_tokens_per_s,
                "tokens/s",
            )
        )
    if limits.max_ttft_s is not None and c.ttft_s > limits.max_ttft_s:
        out.append(
            Reason(
                "ttft_above_limit",
                f"time to first token {c.ttft_s:.2f} s is above {limits.max_ttft_s:g} s",
                c.ttft_s,
                limits.max_ttft_s,
                "s",
            )
        )
    return out


def _unfit_reasons(c: PlanResult) -> list[Reason]:
    messages = list(c.unfit_reasons) or ["does not fit"]
    return [Reason("does_not_fit", m) for m in messages]


def recommend(
    results: Sequence[PlanResult], limits: Limits, *, unit: str = "GPU"
) -> Recommendation:
    """The cheapest fitting format within the limits (ties go to better quality).

    ``unit`` names the device in sentences: "GPU", or "server" for a CPU plan.
    """
    ok: list[PlanResult] = []
    rejected: list[Rejection] = []
    for c in results:
        if not c.fits:
            rejected.append(Rejection(c.format, tuple(_unfit_reasons(c))))
            continue
        failures = _limit_failures(c, limits)
        if failures:
            rejected.append(Rejection(c.format, tuple(failures)))
        else:
            ok.append(c)
    if not ok:
        listed = rejected[:MAX_REJECTIONS_LISTED]
        return Recommendation(
            None,
            [],
            f"{NO_FORMAT_MEETS_LIMITS}: " + " | ".join(r.message for r in listed),
            listed,
        )
    # Experimental engine support (GGUF on vLLM) only wins when nothing else is left.
    ok = [c for c in ok if not c.experimental] or ok
    cheapest = min(cost_key(c) for c in ok)
    tied = [c for c in ok if cost_key(c) <= cheapest * (1 + COST_TIE_FRACTION)]
    best = min(tied, key=lambda c: (c.quality_loss_pct or 0.0, cost_key(c)))
    reasons = [
        f"fits on {best.gpus}x {best.gpu_name} using {best.total_bytes_per_gpu / 1e9:.1f} of "
        f"{best.budget_bytes_per_gpu / 1e9:.1f} GB per device",
    ]
    if best.cost_usd_per_million_tokens is not None:
        reasons.append(
            f"cheapest per token among the {len(ok)} formats within the limits "
            f"({best.cost_usd_per_million_tokens:.3f} USD per 1M tokens)"
        )
    else:
        reasons.append(
            f"fewest {unit}-seconds per token among the {len(ok)} formats within the "
            "limits (no price known)"
        )
    q = best.quality_loss_pct
    quality = best.expected_quality_loss
    if q is None:
        reasons.append("quality not estimated")
    elif quality.get("kind") == "measured":
        reasons.append(
            f"measured perplexity increase {q:.2f}% ({quality.get('source')})"
        )
    else:
        basis = quality.get("basis")
        reasons.append(
            f"expected perplexity increase {q:.2f}% (published"
            + (f", {basis}" if basis else "")
            + ")"
        )
    speed_source = best.sources.get("decode_tokens_per_s", "estimated")
    reasons.append(
        f"{best.decode_tokens_per_s:.1f} tokens/s per sequence, "
        f"time to first token {best.ttft_s:.2f} s ({speed_source})"
    )
    if len(tied) > 1:
        reasons.append(
            "cost ties with "
            + ", ".join(c.format for c in tied if c is not best)
            + "; chosen for lower quality loss"
        )
    return Recommendation(best.format, reasons, None)


def pareto_front(results: Sequence[PlanResult]) -> list[str]:
    """Fitting formats no other beats on both quality loss and cost per token."""
    points = [
        (c.quality_loss_pct, cost_key(c), c.format)
        for c in results
        if c.fits and c.quality_loss_pct is not None
    ]
    front: list[str] = []
    best_quality = float("inf")
    # Sweep from cheapest up: a point is on the front when it beats the quality
    # of everything cheaper (equal points: the first one stands for both).
    for q, _cost, name in sorted(points, key=lambda p: (p[1], p[0])):
        assert q is not None
        if q < best_quality:
            front.append(name)
            best_quality = q
    return front
