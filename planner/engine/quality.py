"""Expected quality loss per format, from published measurements (``data/quality.json``).

Each entry cites its source: llama.cpp's Llama 3 8B scoreboard for GGUF types,
the AWQ and OmniQuant papers for GPTQ/AWQ/RTN. Numbers measured on one reference
model transfer to other models only roughly, which is why the result is labelled
``published-estimate``; a caller with its own measurement replaces it through
``measured_quality`` (``kind: "measured"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from .formats import FormatSpec, parse_format

PUBLISHED = "published-estimate"
MEASURED = "measured"

QualityLoss = dict[str, Any]

# Without a quality limit from the user, formats losing more than this are not
# recommended (Q4_K_M loses ~2.8% perplexity on Llama 3 8B, Q3_K_M ~10.5%).
DEFAULT_MAX_QUALITY_LOSS_PCT = 5.0


def perplexity_change_pct(
    perplexity: float | None,
    base_perplexity: float | None,
    *,
    ndigits: int | None = None,
) -> float | None:
    """Perplexity change of a model over its reference in percent (positive = worse).

    None when either perplexity is missing or zero, so callers never divide by zero;
    ``ndigits`` rounds the result for display and storage."""
    if not perplexity or not base_perplexity:
        return None
    change = (perplexity - base_perplexity) / base_perplexity * 100.0
    return round(change, ndigits) if ndigits is not None else change


def quality_limit_pct(max_quality_loss_pct: float | None) -> float:
    """The perplexity-increase limit in percent: the user's, else the default."""
    if max_quality_loss_pct is None:
        return DEFAULT_MAX_QUALITY_LOSS_PCT
    return max_quality_loss_pct


def exceeds_quality_limit(
    quality_loss_pct: float | None, max_quality_loss_pct: float | None
) -> bool:
    """Whether a known quality loss is above the limit (an unknown loss is not)."""
    if quality_loss_pct is None:
        return False
    return quality_loss_pct > quality_limit_pct(max_quality_loss_pct)


@cache
def _table() -> dict[str, dict[str, Any]]:
    text = (
        resources.files("planner.engine")
        .joinpath("data", "quality.json")
        .read_text(encoding="utf-8")
    )
    return {e["format"]: e for e in json.loads(text)["entries"]}


def quality_table() -> dict[str, dict[str, Any]]:
    """Every published entry of ``quality.json`` by format id."""
    return dict(_table())


def _nearest_entry(fmt: FormatSpec) -> tuple[dict[str, Any] | None, str]:
    """An entry for a format with no row of its own: same family and bits, nearest group."""
    table = _table()
    if fmt.id in table:
        return table[fmt.id], ""
    prefix = re.sub(r"-g-?\d+$", "", fmt.id)
    candidates = [
        e for fid, e in table.items() if re.sub(r"-g-?\d+$", "", fid) == prefix
    ]
    if not candidates or fmt.group_size is None:
        return None, ""

    def _distance(e: dict[str, Any]) -> int:
        g = int(str(e["format"]).rsplit("-g", 1)[1])
        return abs(
            (g if g > 0 else 100_000)
            - (fmt.group_size if fmt.group_size and fmt.group_size > 0 else 100_000)
        )

    best = min(candidates, key=_distance)
    return best, f" (no entry for {fmt.id}; nearest group size {best['format']})"


def expected_quality_loss(
    fmt: FormatSpec | str, *, measured: Mapping[str, Any] | None = None
) -> QualityLoss:
    """Quality loss of ``fmt`` vs the 16-bit model: measured if given, else published."""
    spec = fmt if isinstance(fmt, FormatSpec) else parse_format(fmt)
    if measured is not None:
        return measured_quality(
            perplexity_increase_pct=measured.get("perplexity_increase_pct"),
            kl_divergence=measured.get("kl_divergence"),
            source=str(measured.get("source") or "measured by Quantplan"),
        )
    entry, note = _nearest_entry(spec)
    if entry is None:
        return {
            "perplexity_increase_pct": None,
            "kl_divergence": None,
            "source": f"no published measurement for {spec.id}",
            "kind": PUBLISHED,
        }
    return {
        "perplexity_increase_pct": entry["perplexity_increase_pct"],
        "kl_divergence": entry["kl_divergence"],
        "source": f"{entry['source']}; measured on {entry['model']}{note}"
        if entry.get("model")
        else str(entry["source"]) + note,
        "kind": PUBLISHED,
    }


def _optional_number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name}: must be a number or null, got {value!r}")
    return float(value)


def measured_quality(
    *,
    perplexity_increase_pct: Any,
    kl_divergence: Any = None,
    source: str = "measured by Quantplan",
) -> QualityLoss:
    """A quality-loss dict for values the caller measured itself (``kind: measured``)."""
    return {
        "perplexity_increase_pct": _optional_number(
            "perplexity_increase_pct", perplexity_increase_pct
        ),
        "kl_divergence": _optional_number("kl_divergence", kl_divergence),
        "source": source,
        "kind": MEASURED,
    }
