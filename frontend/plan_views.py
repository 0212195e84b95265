"""Plan pages: plan a model on one or more GPUs (no account needed), share and export
the plan, save it, reopen, rename, delete and compare saved plans."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from frontend import charts
from frontend.commands import command_redirect
from frontend.forms import PlanForm
from frontend.templatetags.quantplan import report_view
from planner import engine, exports, measurements, selectors, services
from planner.models import Plan
from planner.services import DEFAULT_FORMATS, PlanInput

DEFAULT_MODEL = "llama-3-70b"
DEFAULT_GPU = "a100-80gb"
# The live example on the landing page: what the form shows before anyone types.
EXAMPLE_QUERY = {
    "model": DEFAULT_MODEL,
    "gpus_chosen": [DEFAULT_GPU],
    "formats": list(DEFAULT_FORMATS),
    "context_tokens": "8192",
    "concurrency": "8",
    "engine": "vllm",
    "kv_cache_dtype": "f16",
    "utilization": "0.5",
}
# Form fields that never go into a share link (a file cannot; the button is no input).
NOT_SHARED = {"config_file", "name"}
# More plans or jobs than this side by side are unreadable (and cost the server).
MAX_COMPARED = 20
# Browsers and proxies cut URLs somewhere past 8 000 characters.
MAX_SHARE_URL_CHARS = 8000


def _choices(user: Any) -> dict[str, list[tuple[str, str]]]:
    gpus = [(g.id, g.name) for g in engine.catalog.load_gpus()]
    # Machines that measure: a plan for one of them uses its calibrated speeds.
    # Signed-in users only: the public planner shows no internals (host names).
    if user.is_authenticated:
        gpus += [
            (d.plan_id, f"Worker {d.hostname} (its own CPU, calibrated by its runs)")
            for d in measurements.measuring_devices()
        ]
    formats = [(f.id, f.label) for f in engine.list_formats()]
    prices = [
        (p.id, f"{p.provider} {p.model}") for p in engine.catalog.load_api_prices()
    ]
    return {"gpu_choices": gpus, "format_choices": formats, "api_choices": prices}


def _upload_choices(user: Any) -> list[tuple[str, str]]:
    from quantjobs.selectors import upload_ready_list_for_user

    if not user.is_authenticated:  # the public planner: no uploads to pick
        return []
    return [
        (str(u.pk), f"{u.name or u.filename} ({u.filename})")
        for u in upload_ready_list_for_user(user=user)
    ]


def _inputs(data: dict[str, Any]) -> list[PlanInput]:
    upload = data.get("upload") or ""
    common = {
        # A chosen upload is the model; the catalog default left in the box is not.
        "model": "" if upload else (data.get("model") or "").strip(),
        "upload": upload,
        "config": data.get("config"),
        "gpus": data.get("gpus"),
        "formats": tuple(data.get("formats") or DEFAULT_FORMATS),
        "context_tokens": data["context_tokens"],
        "concurrency": data["concurrency"],
        "engine": data["engine"],
        "kv_cache_dtype": data["kv_cache_dtype"],
        "utilization": data["utilization"],
        "api_price": data.get("api_price") or None,
        "price_usd_per_hour": data.get("price_usd_per_hour"),
        "electricity_usd_per_kwh": data.get("electricity_usd_per_kwh"),
        "max_quality_loss_pct": data.get("max_quality_loss_pct"),
        "min_tokens_per_s": data.get("min_tokens_per_s"),
        "max_ttft_s": data.get("max_ttft_s"),
    }
    return [PlanInput(gpu=gpu, **common) for gpu in data["gpus_chosen"]]


def _render_report(report: dict[str, Any]) -> dict[str, Any]:
    """A report with its charts, ready for the template."""
    return {
        **report,
        "memory_chart": charts.memory_chart(report),
        "quality_cost_chart": charts.quality_cost_chart(report),
    }


def _share_query(form: PlanForm) -> str:
    """The query string that reproduces a valid plan form (GET on the planner)."""
    params: list[tuple[str, str]] = []
    for name in form.fields:
        if name in NOT_SHARED or name == "config_text":
            continue
        for value in form.data.getlist(name):
            if str(value).strip():
                params.append((name, str(value).strip()))
    config = form.cleaned_data.get("config")
    if config:
        # Compact JSON: the same model in a shorter link, also when it came as a file.
        params.append(("config_text", json.dumps(config, separators=(",", ":"))))
    return urlencode(params)


def _query_of_saved(plan: Plan) -> str:
    """The share query of a saved plan: the planner recomputes it from its request."""
    req = plan.request or {}
    params: list[tuple[str, str]] = []
    if req.get("model"):
        params.append(("model", str(req["model"])))
    params.append(("gpus_chosen", str(req.get("gpu") or "")))
    params += [("formats", str(f)) for f in req.get("formats") or DEFAULT_FORMATS]
    for key in (
        "gpus",
        "context_tokens",
        "concurrency",
        "engine",
        "kv_cache_dtype",
        "utilization",
        "api_price",
        "price_usd_per_hour",
        "electricity_usd_per_kwh",
        "max_quality_loss_pct",
        "min_tokens_per_s",
        "max_ttft_s",
    ):
        if req.get(key) not in (None, ""):
            params.append((key, str(req[key])))
    if plan.model_config:
        params.append(
            ("config_text", json.dumps(plan.model_config, separators=(",", ":")))
        )
    return urlencode(params)


def _compute(
    form: PlanForm, user: Any
) -> list[tuple[PlanInput, engine.PlanReport]] | None:
    """Run a valid form through the planner; input errors land on the form."""
    try:
        return [
            (data, services.plan_compute(data=data, user=user))
            for data in _inputs(form.cleaned_data)
        ]
    except services.PlanInputError as exc:
        field = {"config": "config_text", "gpu": "gpus_chosen"}.get(
            exc.field, exc.field
        )
        form.add_error(field if field in form.fields else None, str(exc))
        return None


def _keep_uploaded_config(form: PlanForm, user: Any) -> PlanForm:
    """A config.json that came as a file stays in the form as text, so a re-plan
    (another GPU, say) keeps the model instead of asking for it again."""
    if form.cleaned_data.get("config_file") is None or not form.cleaned_data.get(
        "config"
    ):
        return form
    data = form.data.copy()
    data["config_text"] = json.dumps(form.cleaned_data["config"], indent=2)
    kept = PlanForm(
        data,
        None,
        upload_choices=form.fields["upload"].choices[1:]
        if "upload" in form.fields
        else [],
        **_choices(user),
    )
    kept.is_valid()
    return kept


def comparison_columns(
    reports: list[dict[str, Any]], titles: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """One column per plan for the side-by-side table: title, link and what it shows."""
    return [
        {"title": title, "url": url, "v": report_view(report)}
        for report, (title, url) in zip(reports, titles, strict=True)
    ]


@require_http_methods(["GET", "POST"])
def plan_page(request: HttpRequest) -> HttpResponse:
    """The planner, open to everyone: the form, and for each chosen GPU the report.

    Without input it shows a live example plan; every plan gets a link that
    reproduces it and JSON/CSV exports. Saving needs an account.
    """
    bound = request.method == "POST" or "gpus_chosen" in request.GET
    source = request.POST if request.method == "POST" else request.GET
    example = not bound
    if example:
        query = QueryDict(mutable=True)
        for key, value in EXAMPLE_QUERY.items():
            if isinstance(value, list):
                query.setlist(key, value)
            else:
                query[key] = value
        source = query
    form = PlanForm(
        source,
        request.FILES or None,
        upload_choices=_upload_choices(request.user),
        **_choices(request.user),
    )
    reports: list[dict[str, Any]] = []
    share_query = ""
    if form.is_valid():
        computed = _compute(form, request.user)
        if computed is not None:
            share_query = _share_query(form)
            saving = request.POST.get("action") == "save"
            if saving and request.user.is_authenticated:
                try:
                    services.plans_check_room(user=request.user, count=len(computed))
                except services.PlanLimitReached as exc:
                    form.add_error(None, str(exc))
                    saving = False
            if saving:
                return _save(request, form, computed, share_query)
            form = _keep_uploaded_config(form, request.user)
            reports = [_render_report(services.report_to_dict(r)) for _d, r in computed]
    share_url = request.build_absolute_uri(f"{reverse('plan')}?{share_query}")
    context = {
        "form": form,
        "reports": reports,
        "example": example,
        "share_query": share_query,
        "share_url": share_url if share_query else "",
        "share_too_long": len(share_url) > MAX_SHARE_URL_CHARS,
    }
    if len(reports) > 1:
        context["columns"] = comparison_columns(
            reports, [(r.get("gpu") or "", "") for r in reports]
        )
    return render(request, "frontend/plan.html", context)


def _save(
    request: HttpRequest,
    form: PlanForm,
    computed: list[tuple[PlanInput, engine.PlanReport]],
    share_query: str,
) -> HttpResponse:
    if not request.user.is_authenticated:
        messages.info(
            request,
            "Planning needs no account; saving does. Log in or sign up, then press "
            "“Plan and save” again.",
        )
        back = f"{reverse('plan')}?{share_query}"
        return redirect(f"{reverse('login')}?{urlencode({'next': back})}")
    saved = services.plans_save(
        user=request.user,
        name=form.cleaned_data.get("name") or "",
        computed=computed,
    )
    if isinstance(saved, Plan):
        messages.success(request, "Plan saved.")
        return redirect("plan-detail", pk=saved.pk)
    messages.success(request, f"Saved {len(computed)} GPUs as one comparison.")
    return redirect("comparison-detail", pk=saved.pk)


def _export_response(
    reports: list[dict[str, Any]], fmt: str, filename: str, share_url: str = ""
) -> HttpResponse:
    if fmt == "csv":
        response = HttpResponse(
            exports.plans_to_csv(reports=reports), content_type="text/csv"
        )
    else:
        response = HttpResponse(
            exports.plans_to_json(reports=reports, share_url=share_url),
            content_type="application/json",
        )
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


@require_http_methods(["GET"])
def plan_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """A plan given by its share query, as JSON or CSV (no account needed)."""
    form = PlanForm(
        request.GET,
        None,
        upload_choices=_upload_choices(request.user),
        **_choices(request.user),
    )
    computed = _compute(form, request.user) if form.is_valid() else None
    if computed is None:
        errors = {k: [str(e) for e in v] for k, v in form.errors.items()}
        return JsonResponse(
            {
                "detail": "The plan's link has input the planner cannot use.",
                "errors": errors,
            },
            status=400,
        )
    reports = [services.report_to_dict(r) for _d, r in computed]
    share_url = request.build_absolute_uri(f"{reverse('plan')}?{_share_query(form)}")
    name = "-".join(
        [str(reports[0].get("model") or "plan")] + [d.gpu for d, _ in computed]
    )
    return _export_response(reports, fmt, _filename(name), share_url)


def _filename(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return safe.strip("-")[:100] or "plan"


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    """Saved plans and comparisons, with a compare form for any number of plans."""
    plans = selectors.plan_list_for_user(user=request.user).select_related("comparison")
    comparisons = selectors.comparison_list_for_user(user=request.user)
    return render(
        request,
        "frontend/plan_list.html",
        {"plans": plans, "comparisons": comparisons},
    )


@login_required
def plan_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """A saved plan, as it was computed."""
    plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
    context = {
        "plan": plan,
        "reports": [_render_report(plan.report)],
        "share_query": _query_of_saved(plan),
        # Searches run from this plan: their answers are measured recommendations.
        "search_findings": selectors.plan_measured_recommendations(
            plan=plan, user=request.user
        ),
        **recipe_context(request, "plan", plan.pk),
    }
    return render(request, "frontend/plan_detail.html", context)


@login_required
@require_http_methods(["GET"])
def plan_detail_export(request: HttpRequest, pk: str, fmt: str) -> HttpResponse:
    """A saved plan's report as JSON or CSV."""
    plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
    share_url = request.build_absolute_uri(f"{reverse('plan')}?{_query_of_saved(plan)}")
    return _export_response([plan.report], fmt, _filename(plan.name), share_url)


@login_required
@require_POST
def plan_rename(request: HttpRequest, pk: str) -> HttpResponse:
    """Rename a saved plan; an empty or too long name is an error on the page."""
    plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
    return command_redirect(
        request,
        lambda: services.plan_rename(plan=plan, name=request.POST.get("name", "")),
        refused=(services.PlanInputError,),
        success="Plan renamed.",
        done=reverse("plan-detail", args=[plan.pk]),
    )


@login_required
@require_POST
def plan_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete a saved plan."""
    plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
    return command_redirect(
        request,
        lambda: services.plan_delete(plan=plan),
        success=f"Deleted plan “{plan.name}”.",
        done=reverse("plan-list"),
    )


def recipe_context(request: HttpRequest, kind: str, pk: Any) -> dict[str, Any]:
    """The serving recipes of a plan or a job for ``_recipes.html`` (or why there are none)."""
    from planner.recipes import RecipeError
    from planner.selectors import plan_recipe_set
    from quantjobs.recipes import job_recipe_set

    fmt = request.GET.get("recipe_format")
    build = plan_recipe_set if kind == "plan" else job_recipe_set
    key = "plan_id" if kind == "plan" else "job_id"
    try:
        return {"recipe_set": build(user=request.user, fmt=fmt, **{key: pk})}
    except RecipeError as exc:
        return {"recipe_error": str(exc)}


def _compare_context(plans: list[Plan]) -> dict[str, Any]:
    reports = [p.report for p in plans]
    return {
        "plans": plans,
        "reports": [_render_report(r) for r in reports],
        "columns": comparison_columns(
            reports, [(p.name, reverse("plan-detail", args=[p.pk])) for p in plans]
        ),
    }


@login_required
def plan_compare(request: HttpRequest) -> HttpResponse:
    """Any number of saved plans side by side."""
    ids = request.GET.getlist("plan")[:MAX_COMPARED]
    if len(ids) < 2:
        messages.error(request, "Tick two or more plans to compare.")
        return redirect("plan-list")
    plans = [selectors.plan_get_for_user(user=request.user, plan_id=pk) for pk in ids]
    return render(request, "frontend/plan_compare.html", _compare_context(plans))


@login_required
def comparison_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """Plans saved together (one model on several GPUs), side by side."""
    comparison = selectors.comparison_get_for_user(user=request.user, comparison_id=pk)
    plans = list(comparison.plans.order_by("created_at"))
    context = {"comparison": comparison, **_compare_context(plans)}
    return render(request, "frontend/plan_compare.html", context)


@login_required
@require_http_methods(["GET"])
def comparison_export(request: HttpRequest, pk: str, fmt: str) -> HttpResponse:
    """A saved comparison's reports as JSON or CSV."""
    comparison = selectors.comparison_get_for_user(user=request.user, comparison_id=pk)
    reports = [p.report for p in comparison.plans.order_by("created_at")]
    return _export_response(reports, fmt, _filename(comparison.name))


@login_required
@require_POST
def comparison_rename(request: HttpRequest, pk: str) -> HttpResponse:
    """Rename a saved comparison."""
    comparison = selectors.comparison_get_for_user(user=request.user, comparison_id=pk)
    return command_redirect(
        request,
        lambda: services.comparison_rename(
            comparison=comparison, name=request.POST.get("name", "")
        ),
        refused=(services.PlanInputError,),
        success="Comparison renamed.",
        done=reverse("comparison-detail", args=[comparison.pk]),
    )


@login_required
@require_POST
def comparison_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete a comparison and its plans."""
    comparison = selectors.comparison_get_for_user(user=request.user, comparison_id=pk)
    return command_redirect(
        request,
        lambda: services.comparison_delete(comparison=comparison),
        success=f"Deleted comparison “{comparison.name}” and its plans.",
        done=reverse("plan-list"),
    )
