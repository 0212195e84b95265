"""What every chart shares: sizes and colours, nice axis steps, SVG openers, the
legend, a scatter plot's frame and axes, and label placement without overlaps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape

WIDTH = 720
NARROW_WIDTH = 400  # the phone variant, shown instead below 640 CSS px
COMPACT_BELOW = 560  # narrower than this, a chart uses its compact layout
FONT_PX = 13
CHAR_W = 7.2  # average advance of a 13 px sans-serif glyph, to size label boxes
INK, MUTED, BAD, ACCENT = "#1c2330", "#5b6577", "#c0362c", "#2b59c3"

_ids = itertools.count(1)


def uid(prefix: str) -> str:
    """A document-unique id: several charts share a page (compare, several GPUs)."""
    return f"{prefix}{next(_ids)}"


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-2.5-5 x 10^k step that cuts ``span`` into about ``target`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    exponent = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * exponent >= raw:
            return factor * exponent
    return 10 * exponent


def axis(low: float, high: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Rounded axis bounds around [low, high] and the ticks between them."""
    if high <= low:
        high = low + 1.0
    step = nice_step(high - low, target)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    count = int(round((stop - start) / step))
    return start, stop, [start + i * step for i in range(count + 1)]


def tick(value: float) -> str:
    """A tick label without float noise (0.30000000000000004 → 0.3)."""
    return f"{round(value, 6):g}"


def text_w(text: str) -> float:
    """The width a label takes, for placing boxes."""
    return len(text) * CHAR_W


def num(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def svg_open(width: int, height: int, title: str, desc: str, prefix: str) -> list[str]:
    """The ``<svg>`` element with its accessible title and description."""
    chart_id = uid(prefix)
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'font-size="{FONT_PX}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan report's result rows that name a format."""
    return [
        r
        for r in report.get("results") or []
        if isinstance(r, dict) and r.get("format")
    ]


def recommended(report: dict[str, Any]) -> str | None:
    """The plan's recommended format, if any."""
    rec = report.get("recommendation")
    return rec.get("format") if isinstance(rec, dict) else None


_LEGEND_MARKS = {
    "swatch": '<rect x="{x:.0f}" y="{top:.0f}" width="12" height="12" rx="2" '
    'fill="{c}"/>',
    "dash": '<line x1="{x:.0f}" x2="{x14:.0f}" y1="{cy:.0f}" y2="{cy:.0f}" '
    'stroke="{c}" stroke-width="2" stroke-dasharray="5 3"/>',
    "dot": '<circle cx="{x6:.0f}" cy="{cy:.0f}" r="5" fill="{c}" '
    'stroke="{c}" stroke-width="2"/>',
    "hollow": '<circle cx="{x6:.0f}" cy="{cy:.0f}" r="5" fill="#fff" '
    'stroke="{c}" stroke-width="2"/>',
    "ring": '<circle cx="{x6:.0f}" cy="{cy:.0f}" r="7" fill="none" '
    'stroke="{c}" stroke-width="2"/>',
}


def legend(
    items: Sequence[tuple[str, str, str]], x0: float, y0: float, max_x: float
) -> tuple[list[str], float]:
    """Legend entries (kind, colour, label) flowing left to right, wrapping at ``max_x``.

    Returns the SVG parts and the y below the last line.
    """
    parts: list[str] = ['<g class="legend">']
    x, y = x0, y0
    for kind, color, label in items:
        w = 22 + text_w(label)
        if x > x0 and x + w > max_x:
            x, y = x0, y + 20
        cy = y - 5
        mark = _LEGEND_MARKS.get(kind)
        if mark is not None:
            parts.append(
                mark.format(x=x, x6=x + 6, x14=x + 14, cy=cy, top=cy - 6, c=color)
            )
        parts.append(f'<text x="{x + 19:.0f}" y="{y:.0f}">{escape(label)}</text>')
        x += w + 14
    parts.append("</g>")
    return parts, y + 8


@dataclass
class Frame:
    """A scatter plot's area and scales."""

    left: float
    top: float
    right: float
    bottom: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def x(self, value: float) -> float:
        """The x coordinate of a value on the horizontal scale."""
        return self.left + (self.right - self.left) * (value - self.x_lo) / (
            self.x_hi - self.x_lo
        )

    def y(self, value: float) -> float:
        """The y coordinate of a value on the vertical scale, clipped to the frame."""
        clipped = min(max(value, self.y_lo), self.y_hi)
        return self.bottom - (self.bottom - self.top) * (clipped - self.y_lo) / (
            self.y_hi - self.y_lo
        )


def axes(
    frame: Frame,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_fmt: str,
    y_fmt: str,
    x_title: str,
    y_title: str,
    height: float,
) -> list[str]:
    """Grid, axis lines, tick labels and axis titles of a scatter plot."""
    parts = ['<g class="grid">']
    for t in y_ticks:
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.y(t):.1f}" '
            f'y2="{frame.y(t):.1f}"/>'
        )
    parts.append('</g><g class="axis">')
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" '
        f'y2="{frame.bottom}"/>'
    )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" '
        f'y2="{frame.bottom}"/>'
    )
    for t in x_ticks:
        parts.append(
            f'<text x="{frame.x(t):.1f}" y="{frame.bottom + 18}" '
            f'text-anchor="middle">{x_fmt.format(tick(t))}</text>'
        )
    for t in y_ticks:
        parts.append(
            f'<text x="{frame.left - 8}" y="{frame.y(t) + 4:.1f}" '
            f'text-anchor="end">{y_fmt.format(tick(t))}</text>'
        )
    middle_y = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="axis-title" x="{(frame.left + frame.right) / 2:.0f}" '
        f'y="{height - 10}" text-anchor="middle" font-weight="600">{escape(x_title)}</text>'
        f'<text class="axis-title" transform="translate(15 {middle_y:.0f}) rotate(-90)" '
        f'text-anchor="middle" font-weight="600">{escape(y_title)}</text></g>'
    )
    return parts
