"""Server-rendered SVG curves of a capacity report: latency and throughput against
the number of requests in flight, with the targets drawn as lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 40
INK, MUTED, ACCENT, BAD = "#1c2330", "#5b6577", "#2b59c3", "#c0362c"


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * i / (n - 1) if n > 1 else span / 2)


def _y(value: float, top: float) -> float:
    span = HEIGHT - TOP - BOTTOM
    return HEIGHT - BOTTOM - span * (value / top if top > 0 else 0)


def _chart(
    title: str,
    unit: str,
    levels: Sequence[int],
    values: Sequence[float],
    target: float | None,
    chosen: int | None,
) -> SafeString:
    top = max([*values, target or 0.0]) * 1.15 or 1.0
    n = len(values)
    points = " ".join(f"{_x(i, n):.1f},{_y(v, top):.1f}" for i, v in enumerate(values))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" fill="{INK}">{escape(title)} '
        f"({escape(unit)})</text>",
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="{MUTED}"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="{MUTED}"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        value = top / 1.15 * frac
        parts.append(
            f'<text x="{LEFT - 6}" y="{_y(value, top) + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{MUTED}">{value:.3g}</text>'
        )
    for i, level in enumerate(levels):
        parts.append(
            f'<text x="{_x(i, n):.1f}" y="{HEIGHT - BOTTOM + 15}" font-size="11" '
            f'text-anchor="middle" fill="{MUTED}">{level}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" font-size="11" '
        f'text-anchor="middle" fill="{MUTED}">requests in flight per replica</text>'
    )
    if target is not None:
        y = _y(target, top)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{BAD}" stroke-dasharray="4 3"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{BAD}">target {target:g}</text>'
        )
    parts.append(
        f'<polyline points="{points}" fill="none" stroke="{ACCENT}" stroke-width="2"/>'
    )
    for i, (level, v) in enumerate(zip(levels, values, strict=True)):
        r = 5 if level == chosen else 3
        parts.append(
            f'<circle cx="{_x(i, n):.1f}" cy="{_y(v, top):.1f}" r="{r}" '
            f'fill="{ACCENT}"><title>{level} in flight: {v:.3g} {escape(unit)}'
            "</title></circle>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def load_curve_charts(report: dict[str, Any]) -> list[SafeString]:
    """TTFT p95, time per token p95 and throughput against requests in flight."""
    curve = report.get("curve") or []
    if not curve:
        return []
    shown = report.get("recommendation") or report.get("closest") or {}
    chosen = shown.get("concurrency")
    targets = report.get("targets") or {}
    levels = [int(p["concurrency"]) for p in curve]
    return [
        _chart(
            "Time to first token, p95",
            "s",
            levels,
            [p["ttft_p95_s"] for p in curve],
            targets.get("max_ttft_s"),
            chosen,
        ),
        _chart(
            "Time per output token, p95",
            "ms",
            levels,
            [p["tpot_p95_s"] * 1e3 for p in curve],
            targets.get("max_tpot_ms"),
            chosen,
        ),
        _chart(
            "Output tokens/s per replica",
            "tokens/s",
            levels,
            [p["output_tokens_per_s"] for p in curve],
            None,
            chosen,
        ),
    ]
