"""The plan's memory chart: stacked bars per format (weights, KV cache, overhead) in
GB per device, against the usable memory of one device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from frontend.charts.base import (
    BAD,
    COMPACT_BELOW,
    FONT_PX,
    INK,
    MUTED,
    WIDTH,
    axis,
    legend,
    num,
    recommended,
    report_rows,
    svg_open,
    text_w,
    tick,
)

COLORS = {"weights": "#2b59c3", "kv": "#e08a1e", "overhead": "#8a94a6"}
SEGMENT_NAMES = {
    "weights": "Weights",
    "kv": "KV cache",
    "overhead": "Overhead (runtime, activations)",
}


@dataclass(frozen=True)
class Bar:
    """One format's bar, in GB (10^9 bytes) per device."""

    format: str
    weights_gb: float
    kv_gb: float
    overhead_gb: float
    total_gb: float
    gpus: int
    fits: bool


@dataclass(frozen=True)
class _Layout:
    """Where everything of one memory chart goes."""

    width: int
    compact: bool
    unit: str
    recommended: str | None
    left: float
    right: float
    top: float
    bar_h: int
    pitch: int
    bar_dy: int
    axis_y: float
    maximum: float
    ticks: list[float]

    @property
    def height(self) -> int:
        """The chart's height: the axis and its title below the last bar."""
        return int(self.axis_y + 48)

    def x(self, value_gb: float) -> float:
        """The x coordinate of a memory amount in GB."""
        return self.left + (self.right - self.left) * value_gb / self.maximum


def memory_bars(rows: Sequence[dict[str, Any]]) -> list[Bar]:
    """One bar per result row; older saved reports lack the per-GPU fields."""
    bars = []
    for row in rows:
        gpus = max(int(num(row.get("gpus")) or num(row.get("gpus_needed")) or 1), 1)
        weights = num(row.get("weights_bytes_per_gpu"))
        if weights is None:  # reports saved before the per-GPU fields existed
            weights = (num(row.get("weights_bytes")) or 0.0) / gpus
        kv = num(row.get("kv_cache_bytes_per_gpu"))
        if kv is None:
            kv = (num(row.get("kv_cache_bytes")) or 0.0) / gpus
        overhead = num(row.get("overhead_bytes")) or 0.0
        total = num(row.get("total_bytes_per_gpu")) or weights + kv + overhead
        overhead = max(total - weights - kv, 0.0)
        bars.append(
            Bar(
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


def device_unit(report: dict[str, Any]) -> str:
    """What one device of the plan is called: a CPU server is not a GPU."""
    from planner import engine

    try:
        kind = engine.catalog.get_gpu(str(report.get("gpu") or "")).kind
    except Exception:  # a user's own GPU, or a catalog since changed
        kind = "gpu"
    return "server" if kind == "cpu" else "GPU"


def bar_note(bar: Bar, unit: str, is_rec: bool) -> str:
    """The total beside a bar. Per device and in total: fp16 on 4 GPUs draws a
    shorter bar than AWQ on one, so the total across the devices is written too."""
    total, gpus = bar.total_gb, bar.gpus
    note = (
        f"{total:.1f} GB x {gpus} {unit}s = {total * gpus:.1f} GB"
        if gpus > 1
        else f"{total:.1f} GB · 1 {unit}"
    ) + ("" if bar.fits else " · no fit")
    return note + " ★" if is_rec else note


def memory_chart(report: dict[str, Any], *, width: int = WIDTH) -> SafeString:
    """Stacked horizontal bars per format (weights, KV cache, overhead) in GB per GPU,
    with the usable memory of one GPU as a dashed vertical line.

    Below 560 units wide (phones) each format's name and total go on a line of
    their own above its bar, so the bars keep the whole width.
    """
    rows = report_rows(report)
    if not rows:
        return mark_safe("")
    bars = memory_bars(rows)
    budgets = [num(r.get("budget_bytes_per_gpu")) for r in rows]
    capacity = max((b for b in budgets if b), default=0.0) / 1e9
    gpu_name = str(rows[0].get("gpu_name") or report.get("gpu") or "GPU")
    unit = device_unit(report)
    layout, legend_parts = _layout(bars, capacity, unit, recommended(report), width)
    parts = svg_open(
        width,
        layout.height,
        f"Memory per {unit} by format on {gpu_name}",
        f"Stacked bars of weights, KV cache and runtime overhead per {unit} in GB "
        f"(10^9 bytes), against the usable memory of one {unit} ({capacity:.1f} GB).",
        "mem",
    )
    parts.extend(legend_parts)
    parts.extend(_grid(layout))
    for i, bar in enumerate(bars):
        parts.extend(_bar(layout, i, bar))
    if capacity:
        parts.extend(_capacity_line(layout, capacity, len(bars)))
    parts.extend(_x_axis(layout))
    return mark_safe("".join(parts))


def _layout(
    bars: Sequence[Bar],
    capacity: float,
    unit: str,
    rec: str | None,
    width: int,
) -> tuple[_Layout, list[str]]:
    compact = width < COMPACT_BELOW
    legend_items = [("swatch", COLORS[k], SEGMENT_NAMES[k]) for k in COLORS]
    if capacity:
        legend_items.append(("dash", BAD, f"Usable {unit} memory"))
    if compact:
        left, right = 12.0, width - 12.0
    else:
        left = max(90.0, max(text_w(b.format) for b in bars) + 18)
        # the column of totals: as wide as its longest note ("43.2 GB x 4 GPUs = ...")
        widest = max(text_w(bar_note(b, unit, b.format == rec)) for b in bars)
        right = width - max(150.0, widest + 22)
    legend_parts, legend_bottom = legend(
        legend_items, 12 if compact else left, 18, width - 8
    )
    top = legend_bottom + 26  # room for the capacity label
    bar_h, pitch = (16, 42) if compact else (20, 29)
    axis_y = top + len(bars) * pitch + (0 if compact else 4)
    _lo, maximum, ticks = axis(0.0, max([b.total_gb for b in bars] + [capacity]) * 1.04)
    layout = _Layout(
        width=width,
        compact=compact,
        unit=unit,
        recommended=rec,
        left=left,
        right=right,
        top=top,
        bar_h=bar_h,
        pitch=pitch,
        bar_dy=22 if compact else 0,  # compact: the name line sits above the bar
        axis_y=axis_y,
        maximum=maximum,
        ticks=ticks,
    )
    return layout, legend_parts


def _grid(layout: _Layout) -> list[str]:
    parts = ['<g class="grid">']
    for t in layout.ticks:
        parts.append(
            f'<line x1="{layout.x(t):.1f}" x2="{layout.x(t):.1f}" '
            f'y1="{layout.top - 4:.0f}" y2="{layout.axis_y:.0f}"/>'
        )
    parts.append("</g>")
    if not layout.compact:
        parts.append(
            f'<text class="column-title" x="{layout.right + 10:.0f}" '
            f'y="{layout.top - 12:.0f}" fill="{MUTED}">Per {layout.unit} · total</text>'
        )
    return parts


def _bar(layout: _Layout, i: int, bar: Bar) -> list[str]:
    row_y = layout.top + i * layout.pitch
    bar_y = row_y + layout.bar_dy
    is_rec = bar.format == layout.recommended
    parts = []
    if is_rec:
        parts.append(
            f'<rect class="recommended" x="4" y="{row_y - 4:.0f}" '
            f'width="{layout.width - 8}" height="{layout.bar_dy + layout.bar_h + 8}" '
            'rx="4" fill="#e8eefb"/>'
        )
    parts.extend(_bar_labels(layout, row_y, bar_y, bar, is_rec))
    label = escape(bar.format)
    start = 0.0
    dim = "" if bar.fits else ' fill-opacity="0.45"'
    segments = (("weights", bar.weights_gb), ("kv", bar.kv_gb))
    for key, value in (*segments, ("overhead", bar.overhead_gb)):
        if value <= 0:
            continue
        seg_w = max(layout.x(start + value) - layout.x(start), 0.5)
        parts.append(
            f'<rect class="seg-{key}" x="{layout.x(start):.1f}" y="{bar_y:.0f}" '
            f'width="{seg_w:.1f}" height="{layout.bar_h}" fill="{COLORS[key]}"{dim}>'
            f"<title>{label}: {SEGMENT_NAMES[key]} {value:.1f} GB per "
            f"{layout.unit}</title></rect>"
        )
        start += value
    return parts


def _bar_labels(
    layout: _Layout, row_y: float, bar_y: float, bar: Bar, is_rec: bool
) -> list[str]:
    """The format's name left of its bar and its total right of it (compact: both
    on a line above the bar)."""
    label = escape(bar.format)
    weight = ' font-weight="700"' if is_rec else ""
    note = escape(bar_note(bar, layout.unit, is_rec))
    color = INK if bar.fits else BAD
    if layout.compact:
        text_y = row_y + 13
        return [
            f'<text x="{layout.left:.0f}" y="{text_y:.0f}"{weight}>{label}</text>',
            f'<text class="note" x="{layout.right:.0f}" y="{text_y:.0f}" '
            f'text-anchor="end" fill="{color}"{weight}>{note}</text>',
        ]
    mid = bar_y + layout.bar_h / 2 + FONT_PX * 0.35
    return [
        f'<text x="{layout.left - 8:.1f}" y="{mid:.1f}" text-anchor="end"'
        f"{weight}>{label}</text>",
        f'<text class="note" x="{layout.right + 10:.1f}" y="{mid:.1f}" '
        f'fill="{color}"{weight}>{note}</text>',
    ]


def _capacity_line(layout: _Layout, capacity: float, n_bars: int) -> list[str]:
    cx = layout.x(capacity)
    top = layout.top
    cap_label = f"{capacity:.1f} GB usable per {layout.unit}"
    if cx - layout.left > (layout.right - layout.left) / 2:
        anchor, tx = "end", cx - 4
    else:
        anchor, tx = "start", cx + 4
    if layout.compact:
        # One dash per bar, so that it never runs through the names and totals
        # written above the bars.
        bar_top = [top + i * layout.pitch + layout.bar_dy for i in range(n_bars)]
        spans = [(top - 8, top - 1)] + [(y - 3, y + layout.bar_h + 3) for y in bar_top]
        path = " ".join(f"M{cx:.1f},{a:.0f} V{b:.0f}" for a, b in spans)
        line = f'<path class="capacity" d="{path}" fill="none" '
    else:
        line = (
            f'<line class="capacity" x1="{cx:.1f}" x2="{cx:.1f}" '
            f'y1="{top - 8:.0f}" y2="{layout.axis_y:.0f}" '
        )
    return [
        line + f'stroke="{BAD}" stroke-width="2" stroke-dasharray="5 3"/>'
        f'<text class="capacity-label" x="{tx:.1f}" y="{top - 12:.0f}" '
        f'text-anchor="{anchor}" fill="{BAD}" font-weight="600">'
        f"{escape(cap_label)}</text>"
    ]


def _x_axis(layout: _Layout) -> list[str]:
    axis_y, ticks = layout.axis_y, layout.ticks
    parts = [
        f'<g class="axis"><line x1="{layout.left:.1f}" x2="{layout.right:.1f}" '
        f'y1="{axis_y:.0f}" y2="{axis_y:.0f}"/>'
    ]
    for t in ticks:
        parts.append(
            f'<line x1="{layout.x(t):.1f}" x2="{layout.x(t):.1f}" y1="{axis_y:.0f}" '
            f'y2="{axis_y + 4:.0f}"/>'
        )
        anchor = "middle"
        if layout.compact and t == ticks[0]:
            anchor = "start"
        elif layout.compact and t == ticks[-1]:
            anchor = "end"
        parts.append(
            f'<text x="{layout.x(t):.1f}" y="{axis_y + 18:.0f}" '
            f'text-anchor="{anchor}">{tick(t)}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{(layout.left + layout.right) / 2:.0f}" '
        f'y="{axis_y + 38:.0f}" text-anchor="middle" font-weight="600">'
        f"Memory per {layout.unit} (GB, 10⁹ bytes)</text></g></svg>"
    )
    return parts
