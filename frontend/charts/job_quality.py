"""The job page's chart: measured quality loss (perplexity +%) against file size,
with the planner's projected size beside each measured point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from frontend.charts.base import (
    ACCENT,
    COMPACT_BELOW,
    MUTED,
    WIDTH,
    Frame,
    axes,
    axis,
    legend,
    num,
    svg_open,
)
from frontend.charts.labels import Box, leader_line, place_labels

# (format, size in MB, quality loss in %, projected size in MB or None)
Point = tuple[str, float, float, float | None]


def reference_label(results: Sequence[dict[str, Any]]) -> str:
    """What the results were measured against; never "unquantized" for a source that
    was already quantized."""
    for row in results:
        reference = row.get("reference")
        if isinstance(reference, dict) and reference.get("label"):
            return str(reference["label"])
    return "the model the job started from"


def _points(results: Sequence[dict[str, Any]]) -> list[Point]:
    points = []
    for row in results:
        size = num(row.get("artifact_bytes"))
        loss = num(row.get("perplexity_change_pct"))
        if size is None or loss is None:
            continue
        projected = num(row.get("projected_artifact_bytes"))
        points.append(
            (
                str(row.get("format") or "?"),
                size / 1e6,
                loss,
                projected / 1e6 if projected else None,
            )
        )
    return points


def job_quality_chart(
    results: Sequence[dict[str, Any]], *, width: int = WIDTH
) -> SafeString:
    """Measured quality loss (perplexity +%) against file size (MB) per format; the
    planner's projected size is a dashed ring on the same line."""
    points = _points(results)
    if not points:
        return mark_safe("")
    legend_parts, legend_bottom = legend(
        [("dot", ACCENT, "measured"), ("ring", MUTED, "projected size")],
        64,
        18,
        width - 8,
    )
    height = 260
    frame, x_ticks, y_ticks = _frame(points, width, height, legend_bottom)
    parts = svg_open(
        width,
        height,
        "Measured quality loss against file size",
        f"Each format as a point: perplexity increase over the reference "
        f"({reference_label(results)}) in percent against the artifact's size in MB "
        "(10^6 bytes). Dashed rings are the planner's projected sizes.",
        "jq",
    )
    parts.extend(legend_parts)
    parts.extend(
        axes(
            frame,
            x_ticks,
            y_ticks,
            "{}",
            "{}%",
            "File size (MB, 10⁶ bytes)",
            "Quality loss (perplexity +%)",
            height,
        )
    )
    parts.extend(_marks(frame, points, width))
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _frame(
    points: Sequence[Point], width: int, height: int, legend_bottom: float
) -> tuple[Frame, list[float], list[float]]:
    compact = width < COMPACT_BELOW
    sizes = [p[1] for p in points] + [p[3] for p in points if p[3]]
    _x0, x_hi, x_ticks = axis(0.0, max(sizes) * 1.08, 4 if compact else 6)
    losses = [p[2] for p in points]
    y_lo, y_hi, y_ticks = axis(
        min(0.0, min(losses)), max(max(losses), 0.0) * 1.15 or 1.0, 4
    )
    frame = Frame(
        60, legend_bottom + 14, width - 16, height - 52, 0.0, x_hi, y_lo, y_hi
    )
    return frame, x_ticks, y_ticks


def _marks(frame: Frame, points: Sequence[Point], width: int) -> list[str]:
    marks: list[Box] = []
    for _fmt, size, loss, projected in points:
        px, py = frame.x(size), frame.y(loss)
        marks.append(Box(px - 9, py - 9, px + 9, py + 9))
        if projected:
            qx = frame.x(projected)
            marks.append(Box(qx - 9, py - 9, qx + 9, py + 9))
    anchors = [(frame.x(s), frame.y(q), f) for f, s, q, _p in points]
    placed = place_labels(
        anchors, Box(frame.left + 2, frame.top - 4, width - 2, frame.bottom - 2), marks
    )
    parts = []
    for (fmt, size, loss, projected), (tx, ty, anchor, leader) in zip(
        points, placed, strict=True
    ):
        px, py = frame.x(size), frame.y(loss)
        if projected:
            qx = frame.x(projected)
            parts.append(
                f'<line x1="{qx:.1f}" y1="{py:.1f}" x2="{px:.1f}" y2="{py:.1f}" '
                f'stroke="{MUTED}" stroke-dasharray="3 3"/>'
                f'<circle class="projected" cx="{qx:.1f}" cy="{py:.1f}" r="9" '
                f'fill="none" stroke="{MUTED}" stroke-width="1.5" '
                f'stroke-dasharray="3 2"><title>{escape(fmt)}: projected '
                f"{projected:.1f} MB</title></circle>"
            )
        parts.append(
            f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="5" '
            f'fill="{ACCENT}"><title>{escape(fmt)}: {size:.1f} MB, '
            f"{loss:+.2f}% perplexity</title></circle>"
        )
        parts.extend(leader_line(px, py, tx, ty, leader))
        parts.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}">'
            f"{escape(fmt)}</text>"
        )
    return parts
