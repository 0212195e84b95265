"""Expected quality loss per format, from published measurements (``data/quality.json``).

Each entry cites its source and the model it was measured on (family and
parameter count): llama.cpp's Llama 3 8B scoreboard and its LLaMA 7B/13B tables
for GGUF types, the AWQ and OmniQuant papers (Llama 2 7B..70B) for GPTQ/AWQ/RTN.
The planner picks the model's family, interpolates by log(parameters) between
published sizes, and says so when it uses the nearest size or borrows another
family's figures; the result is labelled ``published-estimate``. A caller with
its own measurement of this very model replaces it through ``measured_quality``
(``kind: "measured"``).
"""

from __future__ import annotations

import json
import math
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


# Families whose figures stand in, in this order, for a model of a family with
# no published figure: Llama 3 first, the hardest of them to quantize, so that
# a borrowed figure errs on the side of more loss.
FALLBACK_FAMILIES = ("llama-3", "llama-2", "llama-1")
_FAMILY_PATTERNS = (
    (re.compile(r"llama[-_ ]?3", re.I), "llama-3"),
    (re.compile(r"llama[-_ ]?2", re.I), "llama-2"),
)


@cache
def _entries() -> tuple[dict[str, Any], ...]:
    text = (
        resources.files("planner.engine")
        .joinpath("data", "quality.json")
        .read_text(encoding="utf-8")
    )
    return tuple(json.loads(text)["entries"])


@cache
def _by_format() -> dict[str, tuple[dict[str, Any], ...]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for e in _entries():
        index.setdefault(e["format"], []).append(e)
    return {k: tuple(v) for k, v in index.items()}


def _table() -> dict[str, dict[str, Any]]:
    # One entry per format: the first listed (the reference model's).
    table: dict[str, dict[str, Any]] = {}
    for e in _entries():
        table.setdefault(e["format"], e)
    return table


def quality_table() -> dict[str, dict[str, Any]]:
    """The reference entry of ``quality.json`` per format id (the first listed)."""
    return dict(_table())


def quality_entries(format_id: str) -> list[dict[str, Any]]:
    """Every published entry for one format id (several models and sizes)."""
    return list(_by_format().get(format_id, ()))


def quality_family(model_id: str, name: str = "", architecture: str = "") -> str:
    """The family whose published losses fit a model: ``llama-3``, ``llama-2`` or
    its architecture (``qwen2``...), which then usually has no figures of its own."""
    text = f"{model_id} {name}"
    for pattern, family in _FAMILY_PATTERNS:
        if pattern.search(text):
            return family
    return architecture or ""


def _format_ids(fmt: FormatSpec) -> tuple[list[str], str]:
    """The format ids whose entries describe ``fmt``: its own, else the same family
    and bits at the nearest group size (and a note saying so)."""
    if fmt.id in _by_format():
        return [fmt.id], ""
    prefix = re.sub(r"-g-?\d+$", "", fmt.id)
    candidates = sorted(
        fid for fid in _by_format() if re.sub(r"-g-?\d+$", "", fid) == prefix
    )
    if not candidates or fmt.group_size is None:
        return [], ""

    def _distance(fid: str) -> int:
        g = int(fid.rsplit("-g", 1)[1])
        return abs(
            (g if g > 0 else 100_000)
            - (fmt.group_size if fmt.group_size and fmt.group_size > 0 else 100_000)
        )

    best = min(candidates, key=_distance)
    return [best], f" (no entry for {fmt.id}; nearest group size {best})"


def _params_text(parameters: float) -> str:
    return (
        f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{parameters / 1e6:.0f}M"
    )


def _lerp(a: float | None, b: float | None, t: float) -> float | None:
    if a is None or b is None:
        return None
    return round(a + (b - a) * t, 4)


def _by_size(
    entries: list[dict[str, Any]], parameters: int | None
) -> tuple[float | None, float | None, str, str]:
    """(perplexity %, KLD, where from, how) for one family's entries at a size.

    Within the sizes published: linear in log(parameters) between the two
    nearest. Outside them, or with no size given: the nearest size, said so.
    """
    sized = sorted(
        (e for e in entries if e.get("parameters")), key=lambda e: e["parameters"]
    )
    if not sized:
        e = entries[0]
        return (
            e["perplexity_increase_pct"],
            e["kl_divergence"],
            f"{e['source']}; measured on {e.get('model')}",
            "",
        )
    if parameters is None or parameters <= 0:
        e = (
            sized[0]
            if len(sized) == 1
            else min(sized, key=lambda x: abs(math.log(x["parameters"] / 8e9)))
        )
        return (
            e["perplexity_increase_pct"],
            e["kl_divergence"],
            f"{e['source']}; measured on {e['model']}",
            "",
        )
    for low, high in zip(sized, sized[1:], strict=False):
        if low["parameters"] <= parameters <= high["parameters"]:
            t = math.log(parameters / low["parameters"]) / math.log(
                high["parameters"] / low["parameters"]
            )
            sources = "; ".join(dict.fromkeys([low["source"], high["source"]]))
            return (
                _lerp(
                    low["perplexity_increase_pct"], high["perplexity_increase_pct"], t
                ),
                _lerp(low["kl_divergence"], high["kl_divergence"], t),
                f"{sources}; interpolated by log(parameters) between {low['model']} "
                f"and {high['model']} for {_params_text(parameters)}",
                "interpolated",
            )
    nearest = min(sized, key=lambda e: abs(math.log(e["parameters"] / parameters)))
    how = ""
    if abs(math.log(nearest["parameters"] / parameters)) > math.log(1.25):
        how = (
            f"; no published figure near {_params_text(parameters)} in this family: "
            f"the {_params_text(nearest['parameters'])} figure is used"
        )
    return (
        nearest["perplexity_increase_pct"],
        nearest["kl_divergence"],
        f"{nearest['source']}; measured on {nearest['model']}{how}",
        "nearest size" if how else "",
    )


def expected_quality_loss(
    fmt: FormatSpec | str,
    *,
    measured: Mapping[str, Any] | None = None,
    family: str = "",
    parameters: int | None = None,
) -> QualityLoss:
    """Quality loss of ``fmt`` vs the 16-bit model: measured if given, else published.

    Published figures are chosen for the model's ``family`` and interpolated by
    ``parameters`` (log scale); a family with no figure borrows another's, and
    the source says which.
    """
    spec = fmt if isinstance(fmt, FormatSpec) else parse_format(fmt)
    if measured is not None:
        return measured_quality(
            perplexity_increase_pct=measured.get("perplexity_increase_pct"),
            kl_divergence=measured.get("kl_divergence"),
            source=str(measured.get("source") or "measured by Quantplan"),
        )
    # Plans ask for the same (format, family, size) for every GPU and engine.
    return dict(_published(spec.id, family, parameters))


@cache
def _published(
    format_id: str, family: str, parameters: int | None
) -> tuple[tuple[str, Any], ...]:
    """The published prior for one format, family and size, as dict items."""
    spec = parse_format(format_id)
    ids, note = _format_ids(spec)
    entries = [e for fid in ids for e in quality_entries(fid)]
    if not entries:
        return tuple(
            {
                "perplexity_increase_pct": None,
                "kl_divergence": None,
                "source": f"no published measurement for {spec.id}",
                "kind": PUBLISHED,
                "basis": "",
            }.items()
        )
    by_family: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_family.setdefault(str(e.get("family") or ""), []).append(e)
    borrowed = ""
    if "" in by_family and not [f for f in by_family if f]:
        chosen = by_family[""]  # size-independent (16-bit baselines, TQ types)
        basis = "any model"
    elif family and family in by_family:
        chosen, basis = by_family[family], family
    else:
        basis = next(
            (f for f in FALLBACK_FAMILIES if f in by_family),
            next(f for f in by_family if f) if any(by_family) else "",
        )
        chosen = by_family.get(basis) or entries
        borrowed = (
            f"; borrowed from {basis}: no published figure for the {family} family"
            if family
            else f"; borrowed from {basis}: the model's family is not known"
        )
    if basis == "any model":
        e = chosen[0]
        ppl, kld = e["perplexity_increase_pct"], e["kl_divergence"]
        source, how = str(e["source"]), ""
    else:
        ppl, kld, source, how = _by_size(chosen, parameters)
    return tuple(
        {
            "perplexity_increase_pct": ppl,
            "kl_divergence": kld,
            "source": source + note + borrowed,
            "kind": PUBLISHED,
            "basis": ", ".join(
                x for x in (basis, how, "other family" if borrowed else "") if x
            ),
        }.items()
    )


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
