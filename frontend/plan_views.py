"""Plan pages: plan a model on one or more GPUs, save, reopen and compare plans."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from frontend import charts
from frontend.forms import PlanForm
from planner import engine, selectors, services
from planner.services import DEFAULT_FORMATS, PlanInput

DEFAULT_MODEL = "llama-3-70b"
DEFAULT_GPU = "a100-80gb"


def _choices() -> dict[str, list[tuple[str, str]]]:
    gpus = [(g.id, g.name) for g in engine.catalog.load_gpus()]
    formats = [(f.id, f.label) for f in engine.list_formats()]
    prices = [
        (p.id, f"{p.provider} {p.model}") for p in engine.catalog.load_api_prices()
    ]
    return {"gpu_choices": gpus, "format_choices": formats, "api_choices": prices}


def _upload_choices(user: Any) -> list[tuple[str, str]]:
    from quantjobs.selectors import upload_ready_list_for_user

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


@login_required
@require_http_methods(["GET", "POST"])
def plan_page(request: HttpRequest) -> HttpResponse:
    """The planner: the form, and for each chosen GPU the report with its charts."""
    initial = {
        "model": DEFAULT_MODEL,
        "gpus_chosen": [DEFAULT_GPU],
        "formats": list(DEFAULT_FORMATS),
    }
    bound = request.method == "POST" or "gpus_chosen" in request.GET
    source = request.POST if request.method == "POST" else request.GET
    form = PlanForm(
        source if bound else None,
        request.FILES or None,
        initial=initial,
        upload_choices=_upload_choices(request.user),
        **_choices(),
    )
    reports: list[dict[str, Any]] = []
    if bound and form.is_valid():
        inputs = _inputs(form.cleaned_data)
        try:
            computed = [
                (data, services.plan_compute(data=data, user=request.user))
                for data in inputs
            ]
        except services.PlanInputError as exc:
            field = {"config": "config_text", "gpu": "gpus_chosen"}.get(
                exc.field, exc.field
            )
            form.add_error(field if field in form.fields else None, str(exc))
        else:
            saving = request.POST.get("action") == "save"
            try:
                if saving:
                    services.plans_check_room(user=request.user, count=len(computed))
            except services.PlanLimitReached as exc:
                form.add_error(None, str(exc))
                saving = False
            if saving:
                plan = None
                for data, report in computed:
                    plan = services.plan_save(
                        user=request.user,
                        name=form.cleaned_data.get("name") or "",
                        data=data,
                        report=report,
                    )
                messages.success(request, "Plan saved.")
                assert plan is not None
                return redirect("plan-detail", pk=plan.pk)
            reports = [_render_report(services.report_to_dict(r)) for _d, r in computed]
    return render(request, "frontend/plan.html", {"form": form, "reports": reports})


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    """Saved plans, with a compare form."""
    plans = selectors.plan_list_for_user(user=request.user)
    return render(request, "frontend/plan_list.html", {"plans": plans})


@login_required
def plan_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """A saved plan, as it was computed."""
    plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
    context = {
        "plan": plan,
        "reports": [_render_report(plan.report)],
        **recipe_context(request, "plan", plan.pk),
    }
    return render(request, "frontend/plan_detail.html", context)


def recipe_context(request: HttpRequest, kind: str, pk: Any) -> dict[str, Any]:
    """The serving recipes of a plan or a job for ``_recipes.html`` (or why there are none)."""
    from planner.api.recipes import job_recipe_set, plan_recipe_set
    from planner.recipes import RecipeError

    fmt = request.GET.get("recipe_format")
    build = plan_recipe_set if kind == "plan" else job_recipe_set
    key = "plan_id" if kind == "plan" else "job_id"
    try:
        return {"recipe_set": build(user=request.user, fmt=fmt, **{key: pk})}
    except RecipeError as exc:
        return {"recipe_error": str(exc)}


@login_required
def plan_compare(request: HttpRequest) -> HttpResponse:
    """Two saved plans side by side."""
    ids = request.GET.getlist("plan")[:2]
    if len(ids) != 2:
        messages.error(request, "Choose two plans to compare.")
        return redirect("plan-list")
    plans = [selectors.plan_get_for_user(user=request.user, plan_id=pk) for pk in ids]
    return render(
        request,
        "frontend/plan_compare.html",
        {"plans": plans, "reports": [_render_report(p.report) for p in plans]},
    )
