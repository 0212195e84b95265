"""Server-rendered SVG charts: readable without JavaScript, with axes, units and titles.

Each chart reads the plain dicts the pages already have (``PlanReport.to_dict()`` and
the job page's ``ResultOutput`` rows) and returns one ``<svg>`` element, or an empty
string when there is nothing to draw. Text is placed so that it never overlaps:
labels that would collide move to the next free spot, with a leader line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
NARROW_WIDTH = 400  # the phone variant, shown instead below 640 CSS px
FONT_PX = 13
CHAR_W = 7.2  # average advance of a 13 px sans-serif glyph, to size label boxes
COLORS = {"weights": "#2b59c3", "kv": "#e08a1e", "overhead": "#8a94a6"}
SEGMENT_NAMES = {
    "weights": "Weights",
    "kv": "KV cache",
    "overhead": "Overhead (runtime, activations)",
}
INK, MUTED, BAD, ACCENT = "#1c2330", "#5b6577", "#c0362c", "#2b59c3"
# A few formats lose far more quality than the rest (Q2_K ~56 %, Q3_K_M ~10 % on
# Llama 3 8B, against 0-3 % for the others) and would squash the interesting ones
# against the axis: a loss this many times the next one is drawn at the top edge,
# with its value in the label, instead.
QUALITY_OUTLIER_RATIO = 2.5
QUALITY_AXIS_CAP_PCT = 25.0

_ids = itertools.count(1)


def _uid(prefix: str) -> str:
    """A document-unique id: several charts share a page (compare, several GPUs)."""
    return f"{prefix}{next(_ids)}"


def _nice_step(span: float, target: int = 5) -> float:
    """A 1-2-2.5-5 x 10^k step that cuts ``span`` into about ``target`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    exponent = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * exponent >= raw:
            return factor * exponent
    return 10 * exponent


def _axis(low: float, high: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Rounded axis bounds around [low, high] and the ticks between them."""
    if high <= low:
        high = low + 1.0
    step = _nice_step(high - low, target)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    count = int(round((stop - start) / step))
    return start, stop, [start + i * step for i in range(count + 1)]


def _tick(value: float) -> str:
    """A tick label without float noise (0.30000000000000004 → 0.3)."""
    return f"{round(value, 6):g}"


def _text_w(text: str) -> float:
    return len(text) * CHAR_W


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _svg_open(width: int, height: int, title: str, desc: str, prefix: str) -> list[str]:
    uid = _uid(prefix)
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{uid}-t {uid}-d" '
        f'font-size="{FONT_PX}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{uid}-t">{escape(title)}</title>',
        f'<desc id="{uid}-d">{escape(desc)}</desc>',
    ]


@dataclass
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def hits(self, other: _Box) -> bool:
        return not (
            self.x1 <= other.x0
            or other.x1 <= self.x0
            or self.y1 <= other.y0
            or other.y1 <= self.y0
        )


def _place_labels(
    anchors: Sequence[tuple[float, float, str]],
    bounds: _Box,
    avoid: Iterable[_Box] = (),
) -> list[tuple[float, float, str, bool]]:
    """Put each label near its point without overlapping another label or a point.

    Returns (x, y, anchor, needs_leader) per label; ``y`` is the text baseline.
    Tries spots round the point, then further out (with a leader line).
    """
    taken = list(avoid)
    placed: list[tuple[float, float, str, bool]] = []
    h = FONT_PX + 2
    near = [
        (10, -6, "start"),
        (-10, -6, "end"),
        (10, 14, "start"),
        (-10, 14, "end"),
        (0, -12, "middle"),
        (0, 22, "middle"),
    ]
    far = [
        (dx, dy, anchor)
        for dy in (-26, 30, -42, 46, -58, 62, -74, 78)
        for dx, anchor in ((14, "start"), (-14, "end"), (0, "middle"))
    ]
    points = [(px, py) for px, py, _text in anchors]
    for px, py, text in anchors:
        w = _text_w(text)
        choice = None
        for i, (dx, dy, anchor) in enumerate(near + far):
            x, y = px + dx, py + dy
            x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
            box = _Box(x0, y - FONT_PX + 1, x0 + w, y - FONT_PX + 1 + h)
            inside = (
                box.x0 >= bounds.x0
                and box.x1 <= bounds.x1
                and box.y0 >= bounds.y0
                and box.y1 <= bounds.y1
            )
            # Without a leader line, a label must sit closer to its own point than to
            # any other, or it reads as the other point's name.
            if i < len(near) and _nearest(box, points) != (px, py):
                continue
            if inside and not any(box.hits(t) for t in taken):
                choice = (x, y, anchor, i >= len(near), box)
                break
        if choice is None:  # crowded: keep it readable at the right of the point
            x, y = px + 10, py - 6
            choice = (x, y, "start", False, _Box(x, y - FONT_PX, x + w, y + 2))
        taken.append(choice[4])
        placed.append(choice[:4])
    return placed


def _nearest(box: _Box, points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The point closest to a label box (distance to the box, not its centre)."""

    def gap(point: tuple[float, float]) -> float:
        dx = max(box.x0 - point[0], 0.0, point[0] - box.x1)
        dy = max(box.y0 - point[1], 0.0, point[1] - box.y1)
        return math.hypot(dx, dy)

    return min(points, key=gap)


def _report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in report.get("results") or []
        if isinstance(r, dict) and r.get("format")
    ]


def _recommended(report: dict[str, Any]) -> str | None:
    rec = report.get("recommendation")
    return rec.get("format") if isinstance(rec, dict) else None


def _legend(
    items: Sequence[tuple[str, str, str]], x0: float, y0: float, max_x: float
) -> tuple[list[str], float]:
    """Legend entries (kind, colour, label) flowing left to right, wrapping at ``max_x``.

    Returns the SVG parts and the y below the last line.
    """
    parts: list[str] = ['<g class="legend">']
    x, y = x0, y0
    for kind, color, label in items:
        w = 22 + _text_w(label)
        if x > x0 and x + w > max_x:
            x, y = x0, y + 20
        cy = y - 5
        if kind == "swatch":
            parts.append(
                f'<rect x="{x:.0f}" y="{cy - 6:.0f}" width="12" height="12" '
                f'rx="2" fill="{color}"/>'
            )
        elif kind == "dash":
            parts.append(
                f'<line x1="{x:.0f}" x2="{x + 14:.0f}" y1="{cy:.0f}" y2="{cy:.0f}" '
                f'stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>'
            )
        elif kind == "dot":
            parts.append(
                f'<circle cx="{x + 6:.0f}" cy="{cy:.0f}" r="5" fill="{color}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        elif kind == "hollow":
            parts.append(
                f'<circle cx="{x + 6:.0f}" cy="{cy:.0f}" r="5" fill="#fff" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        elif kind == "ring":
            parts.append(
                f'<circle cx="{x + 6:.0f}" cy="{cy:.0f}" r="7" fill="none" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        parts.append(f'<text x="{x + 19:.0f}" y="{y:.0f}">{escape(label)}</text>')
        x += w + 14
    parts.append("</g>")
    return parts, y + 8


@dataclass
class _Frame:
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
        return self.left + (self.right - self.left) * (value - self.x_lo) / (
            self.x_hi - self.x_lo
        )

    def y(self, value: float) -> float:
        clipped = min(max(value, self.y_lo), self.y_hi)
        return self.bottom - (self.bottom - self.top) * (clipped - self.y_lo) / (
            self.y_hi - self.y_lo
        )


def _axes(
    frame: _Frame,
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
    for tick in y_ticks:
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.right}" y1="{frame.y(tick):.1f}" '
            f'y2="{frame.y(tick):.1f}"/>'
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
    for tick in x_ticks:
        parts.append(
            f'<text x="{frame.x(tick):.1f}" y="{frame.bottom + 18}" '
            f'text-anchor="middle">{x_fmt.format(_tick(tick))}</text>'
        )
    for tick in y_ticks:
        parts.append(
            f'<text x="{frame.left - 8}" y="{frame.y(tick) + 4:.1f}" '
            f'text-anchor="end">{y_fmt.format(_tick(tick))}</text>'
        )
    middle_y = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="axis-title" x="{(frame.left + frame.right) / 2:.0f}" '
        f'y="{height - 10}" text-anchor="middle" font-weight="600">{escape(x_title)}</text>'
        f'<text class="axis-title" transform="translate(15 {middle_y:.0f}) rotate(-90)" '
        f'text-anchor="middle" font-weight="600">{escape(y_title)}</text></g>'
    )
    return parts


def _memory_bars(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    bars = []
    for row in rows:
        gpus = max(int(_num(row.get("gpus")) or _num(row.get("gpus_needed")) or 1), 1)
        weights = _num(row.get("weights_bytes_per_gpu"))
        if weights is None:  # reports saved before the per-GPU fields existed
            weights = (_num(row.get("weights_bytes")) or 0.0) / gpus
        kv = _num(row.get("kv_cache_bytes_per_gpu"))
        if kv is None:
            kv = (_num(row.get("kv_cache_bytes")) or 0.0) / gpus
        overhead = _num(row.get("overhead_bytes")) or 0.0
        total = _num(row.get("total_bytes_per_gpu")) or weights + kv + overhead
        overhead = max(total - weights - kv, 0.0)
        bars.append(
            (
                str(row["format"]),
                weights / 1e9,
                kv / 1e9,
                overhead / 1e9,
                total / 1e9,
                gpus,
                bool(row.get("fits")),
            )
        )
    return bars


def _device_unit(report: dict[str, Any]) -> str:
    """What one device of the plan is called: a CPU server is not a GPU."""
    from planner import engine

    try:
        kind = engine.catalog.get_gpu(str(report.get("gpu") or "")).kind
    except Exception:  # a user's own GPU, or a catalog since changed
        kind = "gpu"
    return "server" if kind == "cpu" else "GPU"


def _bar_note(bar: tuple[Any, ...], unit: str, is_rec: bool) -> str:
    """The total beside a bar. Per device and in total: fp16 on 4 GPUs draws a
    shorter bar than AWQ on one, so the total across the devices is written too."""
    _fmt, _w, _kv, _o, total, gpus, fits = bar
    note = (
        f"{total:.1f} GB x {gpus} {unit}s = {total * gpus:.1f} GB"
        if gpus > 1
        else f"{total:.1f} GB · 1 {unit}"
    ) + ("" if fits else " · no fit")
    return note + " ★" if is_rec else note


def memory_chart(report: dict[str, Any], *, width: int = WIDTH) -> SafeString:
    """Stacked horizontal bars per format (weights, KV cache, overhead) in GB per GPU,
    with the usable memory of one GPU as a dashed vertical line.

    Below 560 units wide (phones) each format's name and total go on a line of
    their own above its bar, so the bars keep the whole width.
    """
    rows = _report_rows(report)
    if not rows:
        return mark_safe("")
    bars = _memory_bars(rows)
    budgets = [_num(r.get("budget_bytes_per_gpu")) for r in rows]
    capacity = max((b for b in budgets if b), default=0.0) / 1e9
    gpu_name = str(rows[0].get("gpu_name") or report.get("gpu") or "GPU")
    unit = _device_unit(report)
    recommended = _recommended(report)
    compact = width < 560

    legend_items = [("swatch", COLORS[k], SEGMENT_NAMES[k]) for k in COLORS]
    if capacity:
        legend_items.append(("dash", BAD, f"Usable {unit} memory"))
    if compact:
        left, right = 12.0, width - 12.0
    else:
        left = max(90.0, max(_text_w(b[0]) for b in bars) + 18)
        # the column of totals: as wide as its longest note ("43.2 GB x 4 GPUs = ...")
        widest = max(_text_w(_bar_note(b, unit, b[0] == recommended)) for b in bars)
        right = width - max(150.0, widest + 22)
    legend, legend_bottom = _legend(
        legend_items, 12 if compact else left, 18, width - 8
    )
    top = legend_bottom + 26  # room for the capacity label
    bar_h, pitch = (16, 42) if compact else (20, 29)
    bar_dy = 22 if compact else 0  # compact: the name line sits above the bar
    axis_y = top + len(bars) * pitch + (0 if compact else 4)
    height = int(axis_y + 48)
    _lo, maximum, ticks = _axis(0.0, max([b[4] for b in bars] + [capacity]) * 1.04)

    def x(value: float) -> float:
        return left + (right - left) * value / maximum

    parts = _svg_open(
        width,
        height,
        f"Memory per {unit} by format on {gpu_name}",
        f"Stacked bars of weights, KV cache and runtime overhead per {unit} in GB "
        f"(10^9 bytes), against the usable memory of one {unit} ({capacity:.1f} GB).",
        "mem",
    )
    parts.extend(legend)
    parts.append('<g class="grid">')
    for tick in ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4:.0f}" '
            f'y2="{axis_y:.0f}"/>'
        )
    parts.append("</g>")
    if not compact:
        parts.append(
            f'<text class="column-title" x="{right + 10:.0f}" y="{top - 12:.0f}" '
            f'fill="{MUTED}">Per {unit} · total</text>'
        )
    for i, (fmt, weights, kv, overhead, _total, _gpus, fits) in enumerate(bars):
        row_y = top + i * pitch
        bar_y = row_y + bar_dy
        label = escape(fmt)
        is_rec = fmt == recommended
        weight = ' font-weight="700"' if is_rec else ""
        if is_rec:
            parts.append(
                f'<rect class="recommended" x="4" y="{row_y - 4:.0f}" '
                f'width="{width - 8}" height="{bar_dy + bar_h + 8}" rx="4" '
                'fill="#e8eefb"/>'
            )
        note = _bar_note(bars[i], unit, is_rec)
        color = INK if fits else BAD
        if compact:
            text_y = row_y + 13
            parts.append(
                f'<text x="{left:.0f}" y="{text_y:.0f}"{weight}>{label}</text>'
            )
            parts.append(
                f'<text class="note" x="{right:.0f}" y="{text_y:.0f}" '
                f'text-anchor="end" fill="{color}"{weight}>{escape(note)}</text>'
            )
        else:
            mid = bar_y + bar_h / 2 + FONT_PX * 0.35
            parts.append(
                f'<text x="{left - 8:.1f}" y="{mid:.1f}" text-anchor="end"'
                f"{weight}>{label}</text>"
            )
            parts.append(
                f'<text class="note" x="{right + 10:.1f}" y="{mid:.1f}" '
                f'fill="{color}"{weight}>{escape(note)}</text>'
            )
        start = 0.0
        dim = "" if fits else ' fill-opacity="0.45"'
        for key, value in (("weights", weights), ("kv", kv), ("overhead", overhead)):
            if value <= 0:
                continue
            seg_w = max(x(start + value) - x(start), 0.5)
            parts.append(
                f'<rect class="seg-{key}" x="{x(start):.1f}" y="{bar_y:.0f}" '
                f'width="{seg_w:.1f}" height="{bar_h}" fill="{COLORS[key]}"{dim}>'
                f"<title>{label}: {SEGMENT_NAMES[key]} {value:.1f} GB per {unit}</title></rect>"
            )
            start += value
    if capacity:
        cx = x(capacity)
        cap_label = f"{capacity:.1f} GB usable per {unit}"
        if cx - left > (right - left) / 2:
            anchor, tx = "end", cx - 4
        else:
            anchor, tx = "start", cx + 4
        if compact:
            # One dash per bar, so that it never runs through the names and totals
            # written above the bars.
            spans = [(top - 8, top - 1)] + [
                (top + i * pitch + bar_dy - 3, top + i * pitch + bar_dy + bar_h + 3)
                for i in range(len(bars))
            ]
            path = " ".join(f"M{cx:.1f},{a:.0f} V{b:.0f}" for a, b in spans)
            line = f'<path class="capacity" d="{path}" fill="none" '
        else:
            line = (
                f'<line class="capacity" x1="{cx:.1f}" x2="{cx:.1f}" '
                f'y1="{top - 8:.0f}" y2="{axis_y:.0f}" '
            )
        parts.append(
            line + f'stroke="{BAD}" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text class="capacity-label" x="{tx:.1f}" y="{top - 12:.0f}" '
            f'text-anchor="{anchor}" fill="{BAD}" font-weight="600">'
            f"{escape(cap_label)}</text>"
        )
    parts.append(
        f'<g class="axis"><line x1="{left:.1f}" x2="{right:.1f}" '
        f'y1="{axis_y:.0f}" y2="{axis_y:.0f}"/>'
    )
    for tick in ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{axis_y:.0f}" '
            f'y2="{axis_y + 4:.0f}"/>'
        )
        anchor = (
            "start"
            if compact and tick == ticks[0]
            else ("end" if compact and tick == ticks[-1] else "middle")
        )
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 18:.0f}" '
            f'text-anchor="{anchor}">{_tick(tick)}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{(left + right) / 2:.0f}" y="{axis_y + 38:.0f}" '
        f'text-anchor="middle" font-weight="600">Memory per {unit} (GB, 10⁹ bytes)</text>'
        "</g></svg>"
    )
    return mark_safe("".join(parts))


def _quality_axis_top(losses_desc: Sequence[float]) -> float:
    """The largest loss that is not an outlier (at least three points stay on scale)."""
    i = 0
    while i < len(losses_desc) - 3 and losses_desc[i] > QUALITY_OUTLIER_RATIO * max(
        losses_desc[i + 1], 0.5
    ):
        i += 1
    return losses_desc[i] if losses_desc else 1.0


def quality_cost_chart(report: dict[str, Any], *, width: int = WIDTH) -> SafeString:
    """Quality loss (%) against cost per 1M tokens; Pareto-optimal formats are filled
    and joined by a dashed line, the recommended one is ringed."""
    pareto = set(report.get("pareto") or [])
    recommended = _recommended(report)
    points = []
    for row in _report_rows(report):
        quality = row.get("expected_quality_loss") or {}
        loss = (
            _num(quality.get("perplexity_increase_pct"))
            if isinstance(quality, dict)
            else None
        )
        cost = _num(row.get("cost_usd_per_million_tokens"))
        if loss is None or cost is None or not row.get("fits"):
            continue
        points.append((str(row["format"]), cost, loss, row["format"] in pareto))
    if not points:
        return mark_safe("")
    compact = width < 560
    legend, legend_bottom = _legend(
        [
            ("dot", ACCENT, "Pareto-optimal"),
            ("hollow", ACCENT, "dominated"),
            ("ring", INK, "recommended"),
        ],
        64,
        18,
        width - 8,
    )
    height = 360 if not compact else 380
    costs = [p[1] for p in points]
    pad = (max(costs) - min(costs)) * 0.08 or max(costs) * 0.1 or 1.0
    x_lo, x_hi, x_ticks = _axis(
        max(min(costs) - pad, 0.0), max(costs) + pad, 4 if compact else 6
    )
    y_top = (
        min(
            _quality_axis_top(sorted((p[2] for p in points), reverse=True)),
            QUALITY_AXIS_CAP_PCT,
        )
        * 1.1
        or 1.0
    )
    _y0, y_hi, y_ticks = _axis(0.0, y_top, 5)
    frame = _Frame(
        60, legend_bottom + 14, width - 16, height - 52, x_lo, x_hi, 0.0, y_hi
    )

    parts = _svg_open(
        width,
        height,
        "Quality loss against cost per million tokens",
        "Each fitting format as a point: expected perplexity increase in percent against "
        "the cost of one million tokens in US dollars. Filled points are Pareto-optimal "
        "(no other format is both cheaper and better); the ringed one is recommended. "
        "Losses beyond the top of the axis are drawn on its edge as triangles.",
        "qc",
    )
    parts.extend(legend)
    parts.extend(
        _axes(
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
    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    if len(front) > 1:
        path = " ".join(f"{frame.x(c):.1f},{frame.y(q):.1f}" for _f, c, q, _p in front)
        parts.append(
            f'<polyline class="pareto" points="{path}" fill="none" '
            f'stroke="{ACCENT}" stroke-dasharray="4 3"/>'
        )
    marks = [
        _Box(frame.x(c) - r, frame.y(q) - r, frame.x(c) + r, frame.y(q) + r)
        for f, c, q, _p in points
        for r in [11 if f == recommended else 7]
    ]
    anchors = [
        (frame.x(c), frame.y(q), f if q <= y_hi else f"{f} (+{q:.0f}%)")
        for f, c, q, _p in points
    ]
    bounds = _Box(frame.left + 2, frame.top - 4, width - 2, frame.bottom - 2)
    placed = _place_labels(anchors, bounds, marks)
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
        if fmt == recommended:
            parts.append(
                f'<circle class="recommended" cx="{px:.1f}" cy="{py:.1f}" r="10" '
                f'fill="none" stroke="{INK}" stroke-width="2"/>'
            )
        if leader:
            parts.append(
                f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{tx:.1f}" '
                f'y2="{ty - 4:.1f}" stroke="{MUTED}" stroke-width="0.8"/>'
            )
        weight = ' font-weight="700"' if fmt == recommended else ""
        parts.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}"{weight}>'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _reference_label(results: Sequence[dict[str, Any]]) -> str:
    """What the results were measured against; never "unquantized" for a source that
    was already quantized."""
    for row in results:
        reference = row.get("reference")
        if isinstance(reference, dict) and reference.get("label"):
            return str(reference["label"])
    return "the model the job started from"


def job_quality_chart(
    results: Sequence[dict[str, Any]], *, width: int = WIDTH
) -> SafeString:
    """Measured quality loss (perplexity +%) against file size (MB) per format; the
    planner's projected size is a dashed ring on the same line."""
    points = []
    for row in results:
        size = _num(row.get("artifact_bytes"))
        loss = _num(row.get("perplexity_change_pct"))
        if size is None or loss is None:
            continue
        projected = _num(row.get("projected_artifact_bytes"))
        points.append(
            (
                str(row.get("format") or "?"),
                size / 1e6,
                loss,
                projected / 1e6 if projected else None,
            )
        )
    if not points:
        return mark_safe("")
    compact = width < 560
    legend, legend_bottom = _legend(
        [("dot", ACCENT, "measured"), ("ring", MUTED, "projected size")],
        64,
        18,
        width - 8,
    )
    height = 260
    sizes = [p[1] for p in points] + [p[3] for p in points if p[3]]
    _x0, x_hi, x_ticks = _axis(0.0, max(sizes) * 1.08, 4 if compact else 6)
    losses = [p[2] for p in points]
    y_lo, y_hi, y_ticks = _axis(
        min(0.0, min(losses)), max(max(losses), 0.0) * 1.15 or 1.0, 4
    )
    frame = _Frame(
        60, legend_bottom + 14, width - 16, height - 52, 0.0, x_hi, y_lo, y_hi
    )
    parts = _svg_open(
        width,
        height,
        "Measured quality loss against file size",
        f"Each format as a point: perplexity increase over the reference "
        f"({_reference_label(results)}) in percent against the artifact's size in MB "
        "(10^6 bytes). Dashed rings are the planner's projected sizes.",
        "jq",
    )
    parts.extend(legend)
    parts.extend(
        _axes(
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
    marks: list[_Box] = []
    for _fmt, size, loss, projected in points:
        px, py = frame.x(size), frame.y(loss)
        marks.append(_Box(px - 9, py - 9, px + 9, py + 9))
        if projected:
            qx = frame.x(projected)
            marks.append(_Box(qx - 9, py - 9, qx + 9, py + 9))
    anchors = [(frame.x(s), frame.y(q), f) for f, s, q, _p in points]
    placed = _place_labels(
        anchors, _Box(frame.left + 2, frame.top - 4, width - 2, frame.bottom - 2), marks
    )
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
        if leader:
            parts.append(
                f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{tx:.1f}" '
                f'y2="{ty - 4:.1f}" stroke="{MUTED}" stroke-width="0.8"/>'
            )
        parts.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}">'
            f"{escape(fmt)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
