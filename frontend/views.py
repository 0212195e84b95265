"""Server-rendered pages. Thin: forms in, services and selectors called, templates out."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from config.throttles import page_wait_s, wait_message
from frontend import services as account_services
from frontend.forms import ApiTokenForm, JobForm, SignUpForm
from frontend.models import ApiToken
from quantjobs import selectors, services
from quantjobs.broker import BrokerUnavailable
from quantjobs.downloads import answers_jsonl_response, artifact_response
from quantjobs.estimates import job_queue_outlook
from quantjobs.models import Job
from quantjobs.presenters import result_row, search_rows
from quantjobs.sources import source_model
from quantjobs.uploads import UploadError, calibration_text_store


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in."""
    if request.user.is_authenticated:
        return redirect("plan")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and (wait := page_wait_s(request, "signup")):
        form.is_valid()  # keep what was typed, with its own errors too
        form.add_error(None, wait_message(wait, "sign-ups"))
        return render(request, "registration/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Start with a plan.")
        return redirect("plan")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """List, create and revoke API tokens."""
    form = ApiTokenForm(request.POST or None)
    new_token = None
    status = 200
    if request.method == "POST" and form.is_valid():
        if wait := page_wait_s(request, "token-create"):
            form.add_error(None, wait_message(wait, "new tokens"))
            status = 429
        else:
            try:
                _token, new_token = account_services.api_token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    expires_at=form.expires_at(),
                )
            except account_services.TokenLimitReached as exc:
                form.add_error("name", str(exc))
            else:
                form = ApiTokenForm()
    return render(
        request,
        "frontend/tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": ApiToken.objects.filter(user=request.user),
        },
        status=status,
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's tokens."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    account_services.api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("tokens")


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    """The user's jobs with status and progress."""
    jobs = selectors.job_list_for_user(user=request.user)
    return render(
        request,
        "frontend/job_list.html",
        {
            "jobs": jobs,
            "storage": selectors.storage_for_user(user=request.user),
            "idle_queues": sorted(selectors.queues_without_workers()),
            "workers": selectors.workers_recent().order_by("hostname"),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    """Create a quantize-and-benchmark job (works without JavaScript)."""
    plan_id = request.POST.get("plan") or request.GET.get("plan")
    plan_source = (
        selectors.job_source_for_plan(user=request.user, plan_id=plan_id)
        if plan_id
        else None
    )
    sample = source_model(kind=Job.SourceKind.SAMPLE, ref="")
    form = JobForm(
        request.POST or None,
        request.FILES or None,
        initial=_job_initial(request, plan_source),
        sample=sample,
    )
    if request.method == "POST" and form.is_valid():
        job = _create_job(request, form)
        if job is not None:
            messages.success(request, "Job queued.")
            return redirect("job-detail", pk=job.pk)
    return render(
        request,
        "frontend/job_new.html",
        {
            "form": form,
            "plan_source": plan_source,
            "sample": sample,
            "uploads": selectors.upload_sources_for_user(user=request.user),
            "storage": selectors.storage_for_user(user=request.user),
        },
    )


def _job_initial(
    request: HttpRequest, plan_source: selectors.PlanSource | None
) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    if plan_source is not None and plan_source.kind:
        # The plan's own model, not the sample: the user picks a stand-in knowingly.
        initial["source_kind"] = plan_source.kind
        initial["source_ref"] = plan_source.ref
    for key in (
        "method", "formats", "source_kind", "source_ref", "plan", "name",
        "search_metric", "search_max",
    ):  # fmt: skip
        if key in request.GET:
            initial[key] = request.GET[key]
    return initial


def _create_job(request: HttpRequest, form: JobForm) -> Any:
    data = form.cleaned_data
    if wait := page_wait_s(request, "job-create"):
        form.add_error(None, wait_message(wait, "new jobs"))
        return None
    options = form.cleaned_options()
    if data.get("calibration_file"):
        try:
            calib_path, calib_name = calibration_text_store(
                user_id=request.user.pk, uploaded=data["calibration_file"]
            )
        except UploadError as exc:
            form.add_error("calibration_file", str(exc))
            return None
        options["calibration_text_path"] = calib_path
        options["calibration_text_name"] = calib_name
    try:
        return services.job_create(
            user=request.user,
            method=data["method"],
            formats=data["formats"],
            source_kind=data["source_kind"],
            source_ref=data.get("source_ref") or "",
            name=data.get("name") or "",
            eval_file=data.get("eval_file") or None,
            options=options,
            plan_id=data.get("plan"),
            search_metric=data.get("search_metric") or "",
            search_max=data.get("search_max"),
        )
    except services.JobInputError as exc:
        # A hidden field (plan) shows no errors of its own: report it above the form.
        shown = exc.field in form.fields and not form.fields[exc.field].widget.is_hidden
        field = exc.field if shown else None
        form.add_error(field, str(exc))
    except services.QuotaExceeded as exc:
        form.add_error(None, str(exc))
    except BrokerUnavailable as exc:
        form.add_error(None, str(exc))
    return None


@login_required
def job_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """One job: live progress, log tail, results beside projections, downloads."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    # The API's row (reference, projections) plus every raw metric the worker kept.
    results = [{**(r.metrics or {}), **result_row(r)} for r in job.results.all()]
    model = selectors.job_model(job=job)
    waiting = (
        job.status == job.Status.QUEUED
        and job.queue in selectors.queues_without_workers()
    )
    from frontend.plan_views import recipe_context

    recipes = recipe_context(request, "job", job.pk) if results else {}
    return render(
        request,
        "frontend/job_detail.html",
        {
            "job": job,
            "model": model,
            "results": results,
            "waiting": waiting,
            "log_tail": job.log_lines,
            "outlook": job_queue_outlook(job=job),
            "search_rows": search_rows(job.search or {}, terminal=job.is_terminal),
            **recipes,
        },
    )


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: str) -> HttpResponse:
    """Cancel a job from its page."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    try:
        services.job_cancel(job=job)
        messages.success(request, "Cancel requested.")
    except services.JobInputError as exc:
        messages.error(request, str(exc))
    return redirect("job-detail", pk=job.pk)


@login_required
@require_POST
def job_rerun(request: HttpRequest, pk: str) -> HttpResponse:
    """Queue the same job again."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    if wait := page_wait_s(request, "job-create"):
        messages.error(request, wait_message(wait, "new jobs"))
        return redirect("job-detail", pk=job.pk)
    try:
        new_job = services.job_rerun(job=job, user=request.user)
    except (services.JobInputError, services.QuotaExceeded, BrokerUnavailable) as exc:
        messages.error(request, str(exc))
        return redirect("job-detail", pk=job.pk)
    messages.success(request, "Job queued again.")
    return redirect("job-detail", pk=new_job.pk)


@login_required
def artifact_list(request: HttpRequest) -> HttpResponse:
    """The user's artifacts with size, sha256 and download links."""
    artifacts = selectors.artifact_list_for_user(user=request.user)
    return render(
        request,
        "frontend/artifact_list.html",
        {
            "artifacts": artifacts,
            "storage": selectors.storage_for_user(user=request.user),
        },
    )


@login_required
def artifact_download(request: HttpRequest, pk: str) -> HttpResponse:
    """Download through the session (the API has the same with a token)."""
    artifact = selectors.artifact_get_for_user(user=request.user, artifact_id=pk)
    return artifact_response(request, artifact)


CHART_SIZE = 220  # px, square: projected on x, measured on y


def _chart_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Projected/measured pairs placed in a square chart; the diagonal is 'exact'."""
    top = max([max(p["projected"], p["measured"]) for p in points] or [1.0]) or 1.0
    return [
        {
            **p,
            "x": round(10 + (CHART_SIZE - 20) * p["projected"] / top, 1),
            "y": round(CHART_SIZE - 10 - (CHART_SIZE - 20) * p["measured"] / top, 1),
        }
        for p in points
        if p["projected"] and p["projected"] > 0 and p["measured"] >= 0
    ]


@login_required
def measurements(request: HttpRequest) -> HttpResponse:
    """How far each projected quantity was from what jobs measured (the ledger)."""
    from quantjobs.calibration import (
        calibration_records_for_user,
        calibration_summary_for_user,
    )

    summary = calibration_summary_for_user(user=request.user)
    for row in summary:
        row["chart"] = _chart_points(row["points"])
    records = calibration_records_for_user(user=request.user)[:200]
    return render(
        request,
        "frontend/measurements.html",
        {"summary": summary, "records": records, "chart_size": CHART_SIZE},
    )


@login_required
def job_answers(request: HttpRequest, pk: str, fmt: str) -> HttpResponse:
    """Per-question outputs of one format as JSONL (the API has the same)."""
    result = selectors.job_result_get_for_user(user=request.user, job_id=pk, fmt=fmt)
    return answers_jsonl_response(result)


def api_page(request: HttpRequest) -> HttpResponse:
    """How to use the API: tokens, the schema and the interactive docs."""
    return render(request, "frontend/api.html")


def page_not_found(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    """A 404 page (JSON for the API)."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """A 500 page without a traceback (JSON for the API)."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse(
            {"detail": "Internal error; it has been logged.", "code": "server_error"},
            status=500,
        )
    return render(request, "500.html", status=500)


def bad_request(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    """400 (or 413 for a body over the size limit), as JSON for the API."""
    from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
    from django.http import JsonResponse

    if isinstance(exception, RequestDataTooBig):
        status, detail = (
            413,
            (
                "The request body is too large; config.json and other JSON bodies are "
                "limited to 2 MB (upload model files through the upload endpoint)."
            ),
        )
    elif isinstance(exception, TooManyFieldsSent):
        status, detail = 400, "Too many form fields were sent."
    else:
        status, detail = 400, "Bad request."
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": "bad_request"}, status=status)
    return render(request, "400.html", {"detail": detail}, status=status)
