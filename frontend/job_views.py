"""Job pages beyond create/detail: live state for the job page, the full log as a
file, renaming and deleting jobs and artifacts, and jobs compared side by side."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from frontend.plan_views import MAX_COMPARED
from quantjobs import selectors, services
from quantjobs.estimates import job_queue_outlook
from quantjobs.models import Job


def outlook_dict(job: Job) -> dict[str, Any]:
    """The queue outlook of a job as plain data for the page and its script."""
    outlook = job_queue_outlook(job=job)
    return dict(outlook.__dict__)


@login_required
@require_GET
def job_live(request: HttpRequest, pk: str) -> JsonResponse:
    """What the job page refreshes every second: status, progress, the full log and
    the queue outlook (position, estimated start and finish, elapsed)."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    return JsonResponse(
        {
            "id": str(job.pk),
            "name": job.name or job.get_method_display(),
            "status": job.status,
            "queue": job.queue,
            "status_display": job.get_status_display(),
            "terminal": job.is_terminal,
            "progress": job.progress,
            "stage": job.stage,
            "error": job.error,
            "log": job.log_lines,
            "outlook": outlook_dict(job),
        }
    )


@login_required
@require_GET
def job_log_download(request: HttpRequest, pk: str) -> HttpResponse:
    """The job's whole log as a text file."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    response = HttpResponse(job.log, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
    return response


@login_required
@require_POST
def job_rename(request: HttpRequest, pk: str) -> HttpResponse:
    """Rename a job."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    try:
        services.job_rename(job=job, name=request.POST.get("name", ""))
    except services.JobInputError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Job renamed.")
    return redirect("job-detail", pk=job.pk)


@login_required
@require_POST
def job_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete an ended job, its results and its artifact files."""
    job = selectors.job_get_for_user(user=request.user, job_id=pk)
    try:
        services.job_delete(job=job)
    except services.JobInputError as exc:
        messages.error(request, str(exc))
        return redirect("job-detail", pk=job.pk)
    messages.success(request, "Job deleted with its results and files.")
    return redirect("job-list")


@login_required
@require_POST
def artifact_rename(request: HttpRequest, pk: str) -> HttpResponse:
    """Change the name an artifact downloads as."""
    artifact = selectors.artifact_get_for_user(user=request.user, artifact_id=pk)
    try:
        services.artifact_rename(
            artifact=artifact, filename=request.POST.get("filename", "")
        )
    except services.JobInputError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Artifact renamed to {artifact.filename}.")
    return redirect("artifact-list")


@login_required
@require_POST
def artifact_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete an artifact's file; its job keeps the measured results."""
    artifact = selectors.artifact_get_for_user(user=request.user, artifact_id=pk)
    name = artifact.filename
    services.artifact_remove(artifact=artifact)
    messages.success(request, f"Deleted {name}; its measured results stay on the job.")
    return redirect(request.POST.get("next") or "artifact-list")


@login_required
@require_GET
def job_compare(request: HttpRequest) -> HttpResponse:
    """Any number of jobs side by side, with one quality-vs-size chart across them."""
    from quantjobs.selectors import job_results_for_compare

    ids = request.GET.getlist("job")[:MAX_COMPARED]
    if len(ids) < 2:
        messages.error(request, "Tick two or more jobs to compare.")
        return redirect("job-list")
    jobs = [selectors.job_get_for_user(user=request.user, job_id=pk) for pk in ids]
    rows = job_results_for_compare(jobs=jobs)
    return render(request, "frontend/job_compare.html", {"jobs": jobs, "rows": rows})
