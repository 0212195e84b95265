"""Server-rendered SVG charts: readable without JavaScript, with axes, units and titles."""

from __future__ import annotations

import math
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 760
COLORS = {"weights": "#2b59c3", "kv": "#e08a1e", "overhead": "#8a94a6"}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent


def _ticks(maximum: float, count: int = 5) -> list[float]:
    return [maximum * i / count for i in range(count + 1)]


def memory_chart(report: dict[str, Any]) -> SafeString:
    """Stacked horizontal bars per format (weights, KV cache, overhead) in GB per GPU,
    with the GPU's capacity as a vertical line."""
    rows = report.get("results") or []
    if not rows:
        return mark_safe("")
    capacity = float(report.get("gpu", {}).get("memory_bytes") or 0) / 1e9
    per_gpu = []
    for row in rows:
        gpus = max(int(row.get("gpus") or row.get("gpus_needed") or 1), 1)
        weights = float(row.get("weights_bytes") or 0) / gpus / 1e9
        kv = float(row.get("kv_cache_bytes") or 0) / gpus / 1e9
        total = float(row.get("total_bytes_per_gpu") or 0) / 1e9
        overhead = max(total - weights - kv, 0.0)
        per_gpu.append((row["format"], weights, kv, overhead, total, gpus, bool(row.get("fits"))))
    left, right, top, bar_h, gap = 130, 30, 30, 20, 8
    height = top + len(per_gpu) * (bar_h + gap) + 50
    maximum = _nice_max(max([p[4] for p in per_gpu] + [capacity]) * 1.05)
    plot_w = WIDTH - left - right

    def x(value: float) -> float:
        return left + plot_w * value / maximum

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="memtitle memdesc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="memtitle">Memory per GPU by format</title>',
        '<desc id="memdesc">Stacked bars of weights, KV cache and runtime overhead per GPU '
        "in GB, against the GPU's memory.</desc>",
        '<g class="grid">',
    ]
    for tick in _ticks(maximum):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 5}" y2="{height - 40}"/>'
        )
    parts.append("</g>")
    for i, (fmt, weights, kv, overhead, total, gpus, fits) in enumerate(per_gpu):
        y = top + i * (bar_h + gap)
        label = escape(fmt)
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{label}</text>'
        )
        start = 0.0
        for key, value in (("weights", weights), ("kv", kv), ("overhead", overhead)):
            if value <= 0:
                continue
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y}" width="{max(x(start + value) - x(start), 0.5):.1f}" '
                f'height="{bar_h}" fill="{COLORS[key]}"><title>{label}: {key} {value:.1f} GB per GPU'
                "</title></rect>"
            )
            start += value
        note = f"{total:.1f} GB × {gpus} GPU{'s' if gpus > 1 else ''}" + ("" if fits else " — does not fit")
        parts.append(
            f'<text x="{x(total) + 6:.1f}" y="{y + bar_h * 0.7:.1f}" '
            f'fill="{"#1c2330" if fits else "#c0362c"}">{escape(note)}</text>'
        )
    if capacity:
        parts.append(
            f'<line x1="{x(capacity):.1f}" x2="{x(capacity):.1f}" y1="{top - 10}" y2="{height - 40}" '
            'stroke="#c0362c" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text x="{x(capacity):.1f}" y="{top - 14}" text-anchor="middle" fill="#c0362c">'
            f"GPU memory {capacity:.0f} GB</text>"
        )
    axis_y = height - 40
    parts.append(f'<g class="axis"><line x1="{left}" x2="{WIDTH - right}" y1="{axis_y}" y2="{axis_y}"/>')
    for tick in _ticks(maximum):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 16}" text-anchor="middle">{tick:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{axis_y + 34}" text-anchor="middle">'
        "Memory per GPU (GB, 10⁹ bytes)</text></g></svg>"
    )
    return mark_safe("".join(parts))


def quality_cost_chart(report: dict[str, Any]) -> SafeString:
    """Quality loss (%) against cost per 1M tokens, Pareto-optimal formats highlighted."""
    points = []
    pareto = set(report.get("pareto") or [])
    for row in report.get("results") or []:
        loss = (row.get("expected_quality_loss") or {}).get("perplexity_increase_pct")
        cost = row.get("cost_usd_per_million_tokens")
        if loss is None or cost is None or not row.get("fits"):
            continue
        points.append((row["format"], float(cost), float(loss), row["format"] in pareto))
    if not points:
        return mark_safe("")
    left, right, top, bottom, height = 70, 30, 20, 50, 320
    max_cost = _nice_max(max(p[1] for p in points) * 1.1)
    max_loss = _nice_max(max(p[2] for p in points) * 1.1 or 1.0)
    plot_w, plot_h = WIDTH - left - right, height - top - bottom

    def x(cost: float) -> float:
        return left + plot_w * cost / max_cost

    def y(loss: float) -> float:
        return top + plot_h * (1 - loss / max_loss)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="qctitle" '
        'xmlns="http://www.w3.org/2000/svg"><title id="qctitle">Quality loss against cost per '
        "million tokens; Pareto-optimal formats are filled</title><g class=\"grid\">",
    ]
    for tick in _ticks(max_loss, 4):
        parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
    parts.append('</g><g class="axis">')
    parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    for tick in _ticks(max_cost, 5):
        parts.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle">${tick:g}</text>')
    for tick in _ticks(max_loss, 4):
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}%</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 10}" text-anchor="middle">'
        "Cost per 1M output tokens (USD)</text>"
        f'<text transform="translate(16 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
        "Quality loss (perplexity +%)</text></g>"
    )
    front = sorted((p for p in points if p[3]), key=lambda p: p[1])
    if len(front) > 1:
        path = " ".join(f"{x(c):.1f},{y(q):.1f}" for _f, c, q, _p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2b59c3" stroke-dasharray="4 3"/>')
    for fmt, cost, loss, on_front in points:
        fill = "#2b59c3" if on_front else "#fff"
        parts.append(
            f'<circle cx="{x(cost):.1f}" cy="{y(loss):.1f}" r="6" fill="{fill}" stroke="#2b59c3" '
            f'stroke-width="2"><title>{escape(fmt)}: ${cost:.3f}/1M tokens, +{loss:.2f}% '
            "perplexity</title></circle>"
            f'<text x="{x(cost) + 9:.1f}" y="{y(loss) - 7:.1f}">{escape(fmt)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
