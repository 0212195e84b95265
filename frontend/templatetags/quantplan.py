"""Page helpers: a plan report made ready to read, the job a format maps to, the catalog
for the model search, grouped choices for long multi-selects, and the job chart.

Presentation only: every number comes from the engine's report or a job's results.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString

from frontend import charts
from planner.engine.recommend import NO_FORMAT_MEETS_LIMITS

register = template.Library()

# 16-bit, fp8 and int8 serving formats have no quantizer of their own on the workers:
# round-to-nearest int8 per channel is the measurable stand-in for "near-lossless 8 bit".
BASELINE_JOB_FORMAT = "rtn-int8-g-1"
FORMAT_GROUPS = (
    ("fp", "16/32-bit and 8-bit serving formats"),
    ("gptq", "GPTQ (vLLM, GPU)"),
    ("awq", "AWQ (vLLM, GPU)"),
    ("rtn", "Round-to-nearest baseline"),
    ("gguf", "GGUF (llama.cpp)"),
)
GPU_GROUPS = (("gpu", "GPUs"), ("apple", "Apple silicon"), ("cpu", "CPU servers"))


def benchmark_job_for(fmt: str) -> tuple[str, str]:
    """(method, job format) that measures a planned format on a worker."""
    name = (fmt or "").strip()
    for prefix, method in (
        ("gguf-", "gguf"),
        ("awq-", "awq"),
        ("gptq-", "gptq"),
        ("rtn-", "rtn"),
    ):
        if name.lower().startswith(prefix):
            return method, name
    return "rtn", BASELINE_JOB_FORMAT


@register.simple_tag
def benchmark_url(fmt: str, plan: Any = None, model: str = "") -> str:
    """The job form, filled in with the job that measures ``fmt``.

    No job name: the job is named after the model it really quantizes (the plan's
    own, or a stand-in the user picks), which the form decides, not the plan.
    """
    method, job_format = benchmark_job_for(fmt)
    params = {"method": method, "formats": job_format}
    plan_id = getattr(plan, "pk", plan)
    if plan_id:
        params["plan"] = str(plan_id)
    return f"{reverse('job-new')}?{urlencode(params)}"


@register.filter
def benchmark_method(fmt: str) -> str:
    """The job method that measures ``fmt`` (gguf, awq, gptq or rtn)."""
    return benchmark_job_for(fmt)[0]


@register.filter
def benchmark_format(fmt: str) -> str:
    """The job format that measures ``fmt``."""
    return benchmark_job_for(fmt)[1]


def _short_gpu(name: str) -> str:
    """'NVIDIA A100 80GB SXM' → 'A100 80GB SXM': the vendor is noise in a KPI."""
    for vendor in ("NVIDIA GeForce ", "NVIDIA ", "AMD Instinct ", "AMD ", "Intel "):
        if name.startswith(vendor):
            return name[len(vendor) :]
    return name


def _rejections(rec: Any) -> list[dict[str, Any]]:
    """The recommendation's rejected formats, each with its list of reasons."""
    rejected = rec.get("rejected") if isinstance(rec, dict) else None
    if not isinstance(rejected, list):
        return []
    return [
        {
            "format": str(r.get("format") or ""),
            "reasons": [x for x in r.get("reasons") or [] if isinstance(x, dict)],
        }
        for r in rejected
        if isinstance(r, dict)
    ]


@register.simple_tag
def report_view(report: dict[str, Any]) -> dict[str, Any]:
    """What the report template shows at a glance, derived from the report dict."""
    rows = [r for r in report.get("results") or [] if isinstance(r, dict)]
    rec = report.get("recommendation") or {}
    rec_format = rec.get("format") if isinstance(rec, dict) else None
    best = next((r for r in rows if r.get("format") == rec_format), None)
    gpu_name = str(
        (rows[0].get("gpu_name") if rows else None) or report.get("gpu") or ""
    )
    why_none = (rec.get("why_none") or "") if isinstance(rec, dict) else ""
    rejected = _rejections(rec)
    # A plan saved before rejections were structured shows its sentence whole.
    why_none_head = NO_FORMAT_MEETS_LIMITS if why_none and rejected else why_none
    kind = _gpu_details().get(str(report.get("gpu") or ""), ("gpu", ""))[0]
    # A CPU server holds the model in RAM: it is a server, not a GPU.
    unit = "server" if kind == "cpu" else "GPU"
    best_total = None
    if best and best.get("total_bytes_per_gpu") is not None and best.get("gpus"):
        best_total = best["total_bytes_per_gpu"] * best["gpus"]
    return {
        "kind": kind,
        "unit": unit,
        "units": f"{unit}s",
        "best_total_bytes": best_total,
        "model": report.get("model") or "",
        "gpu": report.get("gpu") or "",
        "gpu_name": gpu_name,
        "gpu_short": _short_gpu(gpu_name),
        "engine": report.get("engine") or "",
        "rows": rows,
        "best": best,
        "rec_format": rec_format,
        "reasons": list(rec.get("reasons") or []) if isinstance(rec, dict) else [],
        "why_none_head": why_none_head,
        "rejected": rejected,
        "pareto": list(report.get("pareto") or []),
        "has_api": any(
            r.get("api_cost_usd_per_million_tokens") is not None for r in rows
        ),
        "has_owned": any(r.get("owned_cost_usd_per_month") is not None for r in rows),
        "has_price": any(
            r.get("cost_usd_per_million_tokens") is not None for r in rows
        ),
        "notes": [r for r in rows if r.get("warnings") or r.get("unfit_reasons")],
        "workload": (best or (rows[0] if rows else {})).get("assumptions") or [],
        "assumptions": list(report.get("assumptions") or []),
    }


@register.simple_tag
def catalog_models() -> list[dict[str, str]]:
    """Catalog models for the model search (id, display name, Hugging Face id)."""
    from planner import engine

    try:
        models = engine.catalog.load_models()
    except Exception:  # a broken catalog must not take the plan page down
        return []
    return [{"id": m.id, "name": m.name, "hf_id": m.hf_id} for m in models]


def _gpu_details() -> dict[str, tuple[str, str]]:
    """Catalog GPU id → (group, "80 GB · from $1.89/h") for the GPU picker."""
    from planner import engine

    try:
        gpus = engine.catalog.load_gpus()
    except Exception:  # a broken catalog must not take the plan page down
        return {}
    details = {}
    for g in gpus:
        parts = [f"{g.memory_bytes / 2**30:,.0f} GiB"]
        prices = [p.usd_per_hour for p in g.prices if p.usd_per_hour]
        if prices:
            parts.append(f"from ${min(prices):,.2f}/h")
        details[g.id] = (g.kind, " · ".join(parts))
    return details


@register.simple_tag
def grouped_choices(field: Any, kind: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """A picker's choices in labelled groups, with what is selected now."""
    value = field.value() or []
    selected = {str(v) for v in (value if isinstance(value, list | tuple) else [value])}
    details: dict[str, tuple[str, str]] = {}
    if kind == "gpus":
        details = _gpu_details()
        groups = GPU_GROUPS

        def group_of(ident: str) -> str:
            return details.get(ident, ("custom", ""))[0]

        # Not in the catalog: the job workers plans can target (worker:<hostname>).
        labels = dict(groups) | {"custom": "Your workers (measured machines)"}
    else:
        groups = FORMAT_GROUPS

        def group_of(ident: str) -> str:
            head = ident.split("-", 1)[0]
            return head if head in {"gptq", "awq", "rtn", "gguf"} else "fp"

        labels = dict(groups)
    buckets: dict[str, list[dict[str, Any]]] = {}
    for ident, label in field.field.choices:
        if not ident:
            continue
        detail = details.get(str(ident), ("", ""))[1]
        if kind == "formats" and label != ident:
            label, detail = str(ident), str(label)
        buckets.setdefault(group_of(str(ident)), []).append(
            {
                "value": ident,
                "label": label,
                "detail": detail,
                "selected": str(ident) in selected,
            }
        )
    order = [key for key, _ in groups] + [k for k in buckets if k not in dict(groups)]
    return [(labels.get(key, key), buckets[key]) for key in order if key in buckets]


@register.simple_tag
def picked_summary(groups: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """What a picker has selected, to show at a glance: the count and the names."""
    labels = [o["label"] for _g, options in groups for o in options if o["selected"]]
    return {"count": len(labels), "labels": labels}


CHARTS = {
    "memory": charts.memory_chart,
    "quality_cost": charts.quality_cost_chart,
    "job_quality": charts.job_quality_chart,
}


@register.simple_tag
def chart(name: str, data: Any, narrow: bool = False) -> SafeString:
    """One of the charts, wide or in its phone layout."""
    width = charts.NARROW_WIDTH if narrow else charts.WIDTH
    return CHARTS[name](data, width=width)


@register.simple_tag
def job_compare_chart(rows: list[dict[str, Any]], narrow: bool = False) -> SafeString:
    """The quality-vs-size chart over the formats of several jobs."""
    width = charts.NARROW_WIDTH if narrow else charts.WIDTH
    labelled = [{**r, "format": r.get("chart_label") or r.get("format")} for r in rows]
    return charts.job_quality_chart(labelled, width=width)


@register.filter
def index(items: Any, i: int) -> Any:
    """items[i], or None."""
    try:
        return items[int(i)]
    except (IndexError, KeyError, TypeError, ValueError):
        return None


@register.filter
def usd(value: Any, digits: int = 2) -> str:
    """US dollars with thousands separators: 1234.5 → $1,234.50 (empty when unknown)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"${number:,.{int(digits)}f}"


@register.filter
def tokens(value: Any) -> str:
    """A token count the way people say it: 1.2e9 → 1.2 B."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    for size, suffix in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " k")):
        if abs(number) >= size:
            return f"{number / size:,.1f}{suffix}"
    return f"{number:,.0f}"


@register.filter
def all_devices_bytes(row: Any) -> Any:
    """Memory over all GPUs (or servers) of a plan row: per device × devices."""
    try:
        return float(row["total_bytes_per_gpu"]) * int(row["gpus"])
    except (KeyError, TypeError, ValueError):
        return None


@register.filter
def gb1(value: Any) -> str:
    """Bytes as decimal GB with one decimal."""
    try:
        return f"{float(value) / 1e9:,.1f}"
    except (TypeError, ValueError):
        return ""
