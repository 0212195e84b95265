"""Display filters: units are always labelled (MB = 10^6 bytes, MiB = 2^20 bytes)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@register.filter
def filesizemb(value: Any) -> str:
    """Bytes as decimal megabytes with one decimal."""
    number = _number(value)
    return "" if number is None else f"{number / 1e6:,.1f}"


@register.filter
def gb(value: Any) -> str:
    """Bytes as decimal gigabytes with two decimals."""
    number = _number(value)
    return "" if number is None else f"{number / 1e9:,.2f}"


@register.filter
def mib(value: Any) -> str:
    """Bytes as MiB with no decimals."""
    number = _number(value)
    return "" if number is None else f"{number / 2**20:,.0f}"


@register.filter
def pct(value: Any) -> str:
    """A signed percentage with two decimals."""
    number = _number(value)
    if number is None:
        return ""
    rounded = round(number, 2)
    return "0.00%" if rounded == 0 else f"{rounded:+.2f}%"  # never "-0.00%"


@register.filter
def percent(value: Any) -> str:
    """A fraction 0..1 as a percentage."""
    number = _number(value)
    return "" if number is None else f"{number * 100:.1f}%"


@register.filter
def duration(seconds: Any) -> str:
    """Seconds the way people read them: 75 → 1 min 15 s, 4000 → 1 h 7 min."""
    number = _number(seconds)
    if number is None:
        return ""
    total = int(round(max(number, 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
