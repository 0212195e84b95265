"""The plan's quality-against-cost scatter: expected perplexity increase (%) against
cost per 1M tokens, with the Pareto front and the recommended format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from frontend.charts.base import (
    ACCENT,
    COMPACT_BELOW,
    INK,
    WIDTH,
    Frame,
    axes,
    axis,
    legend,
    num,
    recommended,
    report_rows,
    svg_open,
)
from frontend.charts.labels import Box, leader_line, place_labels

# A few formats lose far more quality than the rest (Q2_K ~56 %, Q3_K_M ~10 % on
# Llama 3 8B, against 0-3 % for the others) and would squash the interesting ones
# against the axis: a loss this many times the next one is drawn at the top edge,
# with its value in the label, instead.
QUALITY_OUTLIER_RATIO = 2.5
QUALITY_AXIS_CAP_PCT = 25.0

# (format, cost in USD per 1M tokens, quality loss in %, on the Pareto front)
Point = tuple[str, float, float, bool]


def quality_axis_top(losses_desc: Sequence[float]) -> float:
    """The largest loss that is not an outlier (at least three points stay on scale)."""
    i = 0
    while i < len(losses_desc) - 3 and losses_desc[i] > QUALITY_OUTLIER_RATIO * max(
        losses_desc[i + 1], 0.5
    ):
        i += 1
    return losses_desc[i] if losses_desc else 1.0


def _points(report: dict[str, Any]) -> list[Point]:
    pareto = set(report.get("pareto") or [])
    points = []
    for row in report_rows(report):
        quality = row.get("expected_quality_loss") or {}
        loss = (
            num(quality.get("perplexity_increase_pct"))
            if isinstance(quality, dict)
            else None
        )
        cost = num(row.get("cost_usd_per_million_tokens"))
        if loss is None or cost is None or not row.get("fits"):
            continue
        points.append((str(row["format"]), cost, loss, row["format"] in pareto))
    return points


def quality_cost_chart(report: dict[str, Any], *, width: int = WIDTH) -> SafeString:
    """Quality loss (%) against cost per 1M tokens; Pareto-optimal formats are filled
    and joined by a dashed line, the recommended one is ringed."""
    points = _points(report)
    if not points:
        return mark_safe("")
    rec = recommended(report)
    height = 360 if width >= COMPACT_BELOW else 380
    legend_parts, legend_bottom = legend(
        [
            ("dot", ACCENT, "Pareto-optimal"),
            ("hollow", ACCENT, "dominated"),
            ("ring", INK, "recommended"),
        ],
        64,
        18,
        width - 8,
    )
    frame, x_ticks, y_ticks = _frame(points, width, height, legend_bottom)
    parts = svg_open(
        width,
        height,
        "Quality loss against cost per million tokens",
        "Each fitting format as a point: expected perplexity increase in percent against "
        "the cost of one million tokens in US dollars. Filled points are Pareto-optimal "
        "(no other format is both cheaper and better); the ringed one is recommended. "
        "Losses beyond the top of the axis are drawn on its edge as triangles.",
        "qc",
    )
    parts.extend(legend_parts)
    parts.extend(
        axes(
            frame,
            x_ticks,
            y_ticks,
            "${}",
            "{}%",
            "Cost per 1M tokens, prompt + output (USD)",
            "Quality loss (perplexity +%)",
            height,
        )
    )
    parts.extend(_pareto_line(frame, points))
    parts.extend(_marks(frame, points, rec, width))
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _frame(
    points: Sequence[Point], width: int, height: int, legend_bottom: float
) -> tuple[Frame, list[float], list[float]]:
    compact = width < COMPACT_BELOW
    costs = [p[1] for p in points]
    pad = (max(costs) - min(costs)) * 0.08 or max(costs) * 0.1 or 1.0
    x_lo, x_hi, x_ticks = axis(
        max(min(costs) - pad, 0.0), max(costs) + pad, 4 if compact else 6
    )
    y_top = (
        min(
            quality_axis_top(sorted((p[2] for p in points), reverse=True)),
            QUALITY_AXIS_CAP_PCT,
        )
        * 1.1
        or 1.0
    )
    _y0, y_hi, y_ticks = axis(0.0, y_top, 5)
    frame = Frame(
        60, legend_bottom + 14, width - 16, height - 52, x_lo, x_hi, 0.0, y_hi
    )
    return frame, x_ticks, y_ticks


def _pareto_line(frame: Frame, points: Sequence[Point]) -> list[str]:
    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    if len(front) <= 1:
        return []
    path = " ".join(f"{frame.x(c):.1f},{frame.y(q):.1f}" for _f, c, q, _p in front)
    return [
        f'<polyline class="pareto" points="{path}" fill="none" '
        f'stroke="{ACCENT}" stroke-dasharray="4 3"/>'
    ]


def _marks(
    frame: Frame, points: Sequence[Point], rec: str | None, width: int
) -> list[str]:
    """Each point (a triangle on the top edge when beyond the axis), its ring when
    recommended, and its label, placed clear of the others."""
    y_hi = frame.y_hi
    marks = [
        Box(frame.x(c) - r, frame.y(q) - r, frame.x(c) + r, frame.y(q) + r)
        for f, c, q, _p in points
        for r in [11 if f == rec else 7]
    ]
    anchors = [
        (frame.x(c), frame.y(q), f if q <= y_hi else f"{f} (+{q:.0f}%)")
        for f, c, q, _p in points
    ]
    bounds = Box(frame.left + 2, frame.top - 4, width - 2, frame.bottom - 2)
    placed = place_labels(anchors, bounds, marks)
    parts = []
    for (fmt, cost, loss, on_front), (tx, ty, anchor, leader), (px, py, label) in zip(
        points, placed, anchors, strict=True
    ):
        fill = ACCENT if on_front else "#fff"
        kind = "pareto" if on_front else "dominated"
        tip = escape(f"{fmt}: ${cost:.3f} per 1M tokens, +{loss:.2f}% perplexity")
        if loss > y_hi:  # beyond the axis: a triangle on the top edge
            parts.append(
                f'<path class="point {kind} clipped" d="M{px:.1f},{py - 7:.1f} '
                f'l6,10 h-12 z" fill="{fill}" stroke="{ACCENT}" stroke-width="2">'
                f"<title>{tip}</title></path>"
            )
        else:
            parts.append(
                f'<circle class="point {kind}" cx="{px:.1f}" cy="{py:.1f}" r="6" '
                f'fill="{fill}" stroke="{ACCENT}" stroke-width="2">'
                f"<title>{tip}</title></circle>"
            )
        if fmt == rec:
            parts.append(
                f'<circle class="recommended" cx="{px:.1f}" cy="{py:.1f}" r="10" '
                f'fill="none" stroke="{INK}" stroke-width="2"/>'
            )
        parts.extend(leader_line(px, py, tx, ty, leader))
        weight = ' font-weight="700"' if fmt == rec else ""
        parts.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}"{weight}>'
            f"{escape(label)}</text>"
        )
    return parts
