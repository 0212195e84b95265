"""Accuracy-aware search jobs: candidates in size order, the trail, the answer.

A search is a job whose formats are its candidates, smallest first; the child
measures them one by one and stops at the first within the bar (the rule is
``planner.engine.search``). The trail and the answer live on ``Job.search``:

    {"metric": "perplexity_change_pct", "max": 3.0, "label": "perplexity change ≤ 3%",
     "candidates": [{"format": "gguf-Q4_K_M", "projected_bytes": 105_000_000}, ...],
     "size_basis": "projected file size (planner engine) of <model>",
     "trail": [{"format", "value", "passed", "reason"}, ...],
     "answer": "gguf-Q6_K" | None, "closest": ..., "closest_value": ...,
     "summary": "...", "finished": true}

A search that ends with no format within the bar is SUCCEEDED all the same: it
ran to its end and answered the question ("no format meets it", and which came
closest). A candidate that fails to quantize ends the search as any job ends:
PARTIAL when earlier candidates were measured, else FAILED.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from planner.engine.search import (
    EXACT_MATCH_DROP_POINTS,
    METRICS,
    SearchBar,
    SearchError,
    Trial,
    order_candidates,
    outcome,
    search_bar,
)
from planner.measurements import SearchFinding
from quantjobs.models import Job

logger = logging.getLogger(__name__)

# Tried when the user names no candidates: the usual ladder, smallest first once
# sized. IQ types are left out (each needs an importance matrix: slow on a CPU).
DEFAULT_CANDIDATES: dict[str, list[str]] = {
    Job.Method.GGUF: [
        "gguf-Q2_K",
        "gguf-Q3_K_M",
        "gguf-Q4_K_M",
        "gguf-Q5_K_M",
        "gguf-Q6_K",
        "gguf-Q8_0",
    ],
    Job.Method.RTN: ["rtn-int4-g64", "rtn-int4-g128", "rtn-int8-g128"],
    Job.Method.AWQ: ["awq-4bit-g128", "awq-4bit-g64", "awq-4bit-g32"],
    Job.Method.GPTQ: ["gptq-3bit-g128", "gptq-4bit-g128", "gptq-8bit-g128"],
}


# The search bar as the job form and the API offer it, read from the engine's
# metrics; its bounds (each metric's cap, no negative loss) are search_bar's, which
# the one service applies to both.
_METRIC_NOTES = {EXACT_MATCH_DROP_POINTS: "; needs a prompt/answer .jsonl"}
SEARCH_HELP = (
    "Tries the candidates smallest first and stops at the first whose measured loss "
    "is within the bar. GGUF searches run on CPU workers; AWQ and GPTQ candidates "
    "need a GPU worker."
)
SEARCH_MAX_HELP = (
    "The largest loss to accept: 3 for a 3% perplexity change, 0.05 for a KL "
    "divergence of 0.05 nats, 5 for 5 exact-match points."
)


def search_metric_choices() -> list[tuple[str, str]]:
    """(metric, 'perplexity change (%, at most 100)') for each metric a search bar
    can measure."""
    return [
        (
            metric,
            f"{name} ({unit.strip()}, at most {cap:g}{_METRIC_NOTES.get(metric, '')})",
        )
        for metric, (name, unit, cap) in METRICS.items()
    ]


def search_bar_from_input(metric: str, max_value: Any) -> SearchBar:
    """The validated bar; SearchError says what to change."""
    return search_bar(metric, max_value)


def _spec_for(model_spec: dict[str, Any], model_id: str) -> tuple[Any, str]:
    """(ModelSpec or None, its name) from a job's stored spec or catalog id."""
    from planner.engine import CatalogError
    from planner.engine.catalog import get_model
    from quantjobs.modelspec import ModelSpecError, spec_from_json

    if model_spec and "error" not in model_spec:
        try:
            spec = spec_from_json(model_spec)
            return spec, spec.name
        except ModelSpecError:
            pass
    if model_id:
        try:
            model = get_model(model_id)
            return model.spec, model.spec.name
        except CatalogError:
            pass
    return None, ""


def _plan_costs(report: dict[str, Any] | None) -> dict[str, float | None]:
    """Cost per hour of each format of a plan's report (None: it does not fit)."""
    costs: dict[str, float | None] = {}
    for row in (report or {}).get("results") or []:
        if isinstance(row, dict) and row.get("format"):
            cost = row.get("cost_usd_per_hour")
            fits = row.get("fits", True)
            costs[str(row["format"])] = (
                float(cost) if isinstance(cost, (int, float)) and fits else None
            )
    if not any(c is not None for c in costs.values()):
        return {}
    return costs


def sized_candidates(
    *,
    method: str,
    formats: list[str],
    model_spec: dict[str, Any],
    model_id: str,
    plan_report: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The candidates smallest first, each with its projected size, and what the
    order rests on: the planner's projected file size for the job's model, else
    the formats' bits per weight (a Hugging Face source is sized once downloaded).
    With a plan whose report prices the candidates, the cheapest on the plan's GPUs
    come first instead."""
    from planner.engine import artifact_bytes, parse_format

    spec, name = _spec_for(model_spec, model_id)
    sizes: dict[str, float | None] = {}
    basis = "the order given"
    if method == Job.Method.SELFTEST:
        sizes = dict.fromkeys(formats)
    elif spec is not None:
        basis = f"projected file size of {name} (planner engine)"
        for fmt in formats:
            try:
                sizes[fmt] = float(artifact_bytes(spec, parse_format(fmt)))
            except Exception:  # a size must never stop the search from running
                logger.warning("no size for %s %s", name, fmt, exc_info=True)
                sizes[fmt] = None
    else:
        basis = "bits per weight (the model's shape is not known yet)"
        for fmt in formats:
            sizes[fmt] = parse_format(fmt).nominal_bits_per_weight
    costs = _plan_costs(plan_report)
    if costs:
        # "The cheapest on the plan's GPUs": cost per hour first (a format that
        # does not fit them goes last), the projected size breaking ties.
        gpu = str(plan_report.get("gpu") or "the plan's GPUs")
        basis = f"cost per hour on {gpu} (the plan's report), then {basis}"
        unfit = max((c for c in costs.values() if c is not None), default=0.0) + 1
        by_size = order_candidates(formats, sizes.get)
        rank = {fmt: i for i, fmt in enumerate(by_size)}
        ordered = sorted(
            by_size,
            key=lambda f: (
                c if (c := costs.get(f)) is not None else unfit,
                rank[f],
            ),
        )
    else:
        ordered = order_candidates(formats, sizes.get)
    candidates = [
        {
            "format": fmt,
            "projected_bytes": int(size)
            if (size := sizes.get(fmt)) is not None and spec is not None
            else None,
        }
        for fmt in ordered
    ]
    return candidates, basis


def new_search(
    bar: SearchBar, candidates: list[dict[str, Any]], size_basis: str
) -> dict[str, Any]:
    """The ``Job.search`` of a search job that has not run yet."""
    return {
        "metric": bar.metric,
        "max": bar.max_value,
        "label": bar.label,
        "candidates": candidates,
        "size_basis": size_basis,
        "trail": [],
        "answer": None,
        "closest": None,
        "closest_value": None,
        "summary": "",
        "finished": False,
    }


def bar_of(search: dict[str, Any]) -> SearchBar:
    """The bar of a stored search."""
    return SearchBar(metric=str(search["metric"]), max_value=float(search["max"]))


def search_reset(*, job: Job) -> None:
    """Forget the trail of an earlier, lost attempt: a retry measures afresh."""
    search = dict(job.search or {})
    if not search.get("trail") and not search.get("summary"):
        return
    search.update(
        trail=[], answer=None, closest=None, closest_value=None, summary="",
        finished=False,
    )  # fmt: skip
    Job.objects.filter(pk=job.pk).update(search=search)
    job.search = search


def search_record_trial(*, job: Job, event: dict[str, Any]) -> None:
    """Add one measured candidate (a child's ``trial`` event) to the trail."""
    search = dict(job.search or {})
    if not search:
        return
    trial = {
        "format": str(event.get("format", "")),
        "value": event.get("value"),
        "passed": bool(event.get("passed")),
        "reason": str(event.get("reason", ""))[:500],
    }
    search["trail"] = [*search.get("trail", []), trial]
    Job.objects.filter(pk=job.pk).update(search=search)
    job.search = search
    job.append_log(f"search: {trial['format']} {trial['reason']}")


def search_conclude(*, job: Job, stopped_by: str = "") -> dict[str, Any]:
    """Store the answer (or the closest miss) once the child ended.

    On a finished search only the answer's artifact stays (or the closest
    miss's): the other candidates keep their measured results, not their files,
    so a search does not fill the storage quota with formats it rejected.
    ``stopped_by``: why a search ended before its stop rule (a failed candidate).
    """
    search = dict(job.search or {})
    if not search:
        return search
    bar = bar_of(search)
    trials = [
        Trial(str(t["format"]), t.get("value"), bool(t["passed"]), str(t["reason"]))
        for t in search.get("trail", [])
    ]
    ended = outcome(bar, trials, len(search.get("candidates", [])))
    search.update(
        answer=ended.answer,
        closest=ended.closest,
        closest_value=ended.closest_value,
        summary=ended.summary
        if not stopped_by
        else f"The search stopped: {stopped_by}",
        finished=not stopped_by,
    )
    Job.objects.filter(pk=job.pk).update(search=search)
    job.search = search
    job.append_log(f"search: {search['summary']}")
    if not stopped_by:
        _keep_only(job, ended.answer or ended.closest)
    return search


def _keep_only(job: Job, keep: str | None) -> None:
    from quantjobs.artifacts import delete_artifact

    for artifact in job.artifacts.exclude(format=keep or ""):
        job.append_log(
            f"search: removed the file of {artifact.format}; its measurements stay."
        )
        delete_artifact(artifact)


def search_findings_for_plan(
    *, user: AbstractBaseUser | None, plan_id: Any
) -> list[SearchFinding]:
    """The answers of finished searches run from a plan, newest first: the plan
    page, API and CLI state them as measured recommendations (``user=None``: any
    user's, for the operator's CLI). Registered with ``planner.measurements``."""
    from quantjobs.selectors import job_model

    findings = []
    jobs = Job.objects.filter(plan_id=plan_id, status=Job.Status.SUCCEEDED).exclude(
        search={}
    )
    if user is not None:
        jobs = jobs.filter(user=user)
    for job in jobs.order_by("-finished_at"):
        search = job.search or {}
        if not search.get("finished"):
            continue
        model = job_model(job=job)
        kind = (
            "cheapest format on the plan's GPUs"
            if str(search.get("size_basis", "")).startswith("cost")
            else "smallest format"
        )
        if search.get("answer"):
            text = (
                f"measured: {search['answer']} is the {kind} within "
                f"{search['label']} on {model.name}"
            )
        else:
            text = f"measured: {search['summary']}"
        closest_value = search.get("closest_value")
        findings.append(
            SearchFinding(
                job_id=str(job.pk),
                answer=search.get("answer"),
                closest=search.get("closest"),
                closest_value=float(closest_value)
                if isinstance(closest_value, (int, float))
                else None,
                label=str(search.get("label") or ""),
                model=model.name,
                stand_in_for=model.stand_in_for,
                text=text,
                finished_at=job.finished_at.isoformat() if job.finished_at else "",
            )
        )
    return findings


__all__ = [
    "DEFAULT_CANDIDATES",
    "SEARCH_HELP",
    "SEARCH_MAX_HELP",
    "SearchError",
    "bar_of",
    "new_search",
    "search_bar_from_input",
    "search_conclude",
    "search_findings_for_plan",
    "search_metric_choices",
    "search_record_trial",
    "search_reset",
    "sized_candidates",
]
