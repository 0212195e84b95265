"""Reads for jobs, results and artifacts, always scoped to their owner."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from quantjobs.models import Artifact, Job, ModelUpload, WorkerHeartbeat


def job_list_for_user(
    *, user: AbstractBaseUser, status: str | None = None
) -> QuerySet[Job]:
    """The user's jobs, newest first, optionally of one status."""
    jobs = Job.objects.filter(user=user).prefetch_related("results", "artifacts")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def _get_owned(queryset: QuerySet[Any], pk: Any) -> Any:
    # 404 for another user's object and for a malformed id alike: ids leak nothing.
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc
    except Exception as exc:  # ValidationError for a malformed UUID
        if exc.__class__.__name__ == "ValidationError":
            raise Http404("Not found.") from exc
        raise


def job_get_for_user(*, user: AbstractBaseUser, job_id: Any) -> Job:
    """One of the user's jobs, or 404."""
    return _get_owned(job_list_for_user(user=user), job_id)


def artifact_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Artifact]:
    """The user's artifacts, newest first."""
    return Artifact.objects.filter(user=user).select_related("job")


def artifact_get_for_user(*, user: AbstractBaseUser, artifact_id: Any) -> Artifact:
    """One of the user's artifacts, or 404."""
    return _get_owned(artifact_list_for_user(user=user), artifact_id)


def upload_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ModelUpload]:
    """The user's uploaded models."""
    return ModelUpload.objects.filter(user=user)


def upload_get_for_user(*, user: AbstractBaseUser, upload_id: Any) -> ModelUpload:
    """One of the user's uploads, or 404."""
    return _get_owned(upload_list_for_user(user=user), upload_id)


def workers_recent(*, within_s: float = 120) -> QuerySet[WorkerHeartbeat]:
    """Workers that announced themselves recently."""
    from datetime import timedelta

    from django.utils import timezone

    return WorkerHeartbeat.objects.filter(
        last_seen_at__gte=timezone.now() - timedelta(seconds=within_s)
    )


def measured_quality_for_model(
    *, user: AbstractBaseUser, model_id: str
) -> dict[str, Any]:
    """The user's latest measured quality per format for a catalog model."""
    from quantjobs.models import JobResult

    measured: dict[str, Any] = {}
    results = (
        JobResult.objects.filter(
            job__user=user,
            job__model_id=model_id,
            job__status__in=list(Job.KEEPS_ARTIFACTS),
        )
        .order_by("created_at")
        .select_related("job")
    )
    for result in results:
        metrics = result.metrics or {}
        ppl, base = metrics.get("perplexity"), metrics.get("base_perplexity")
        if not ppl or not base:
            continue
        measured[result.format] = {
            "perplexity_increase_pct": round((ppl - base) / base * 100.0, 3),
            "kl_divergence": metrics.get("kl_divergence"),
            "kind": "measured",
            "source": f"your job {result.job_id}",
        }
    return measured
