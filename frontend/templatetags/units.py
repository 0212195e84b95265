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
