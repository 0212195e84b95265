"""Reads for jobs, results and artifacts, always scoped to their owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from planner.engine.quality import perplexity_change_pct
from planner.selectors import get_owned
from quantjobs.models import (
    Artifact,
    Job,
    JobResult,
    ModelUpload,
    TusUpload,
    WorkerHeartbeat,
)


def job_list_for_user(
    *, user: AbstractBaseUser, status: str | None = None
) -> QuerySet[Job]:
    """The user's jobs, newest first, optionally of one status."""
    jobs = (
        Job.objects.filter(user=user)
        .select_related("plan")
        .prefetch_related("results", "artifacts")
    )
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def job_get_for_user(*, user: AbstractBaseUser, job_id: Any) -> Job:
    """One of the user's jobs, or 404."""
    return get_owned(job_list_for_user(user=user), job_id)


def job_result_get_for_user(
    *, user: AbstractBaseUser, job_id: Any, fmt: str
) -> JobResult:
    """One format's result of one of the user's jobs, or 404."""
    job = job_get_for_user(user=user, job_id=job_id)
    result = JobResult.objects.filter(job=job, format=fmt).first()
    if result is None:
        raise Http404("Not found.")
    return result


def artifact_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Artifact]:
    """The user's artifacts, newest first."""
    return Artifact.objects.filter(user=user).select_related("job")


def artifact_get_for_user(*, user: AbstractBaseUser, artifact_id: Any) -> Artifact:
    """One of the user's artifacts, or 404."""
    return get_owned(artifact_list_for_user(user=user), artifact_id)


def upload_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ModelUpload]:
    """The user's uploaded models, whatever their check says."""
    return ModelUpload.objects.filter(user=user)


def upload_ready_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ModelUpload]:
    """The user's uploads that passed their check: the ones a plan or job can use."""
    return upload_list_for_user(user=user).filter(status=ModelUpload.Status.READY)


def upload_get_for_user(*, user: AbstractBaseUser, upload_id: Any) -> ModelUpload:
    """One of the user's uploads, or 404."""
    return get_owned(upload_list_for_user(user=user), upload_id)


def upload_find_for_user(
    *, user: AbstractBaseUser | None, upload_id: Any
) -> ModelUpload | None:
    """One of the user's uploads, or None (also for a malformed id or no user)."""
    import uuid

    if user is None or not user.is_authenticated:
        return None
    try:
        pk = uuid.UUID(str(upload_id))
    except ValueError:
        return None
    return upload_list_for_user(user=user).filter(pk=pk).first()


def workers_recent(*, within_s: float = 120) -> QuerySet[WorkerHeartbeat]:
    """Workers that announced themselves recently."""
    from datetime import timedelta

    from django.utils import timezone

    return WorkerHeartbeat.objects.filter(
        last_seen_at__gte=timezone.now() - timedelta(seconds=within_s)
    )


def format_measurements_for_model(
    *, user: AbstractBaseUser | None, model_id: str
) -> list[Any]:
    """What jobs measured of one model, per result, oldest first, for plans
    (``planner.measurements``): the user's own jobs, or every user's for
    ``user=None`` (the operator's ``manage.py plan``).

    Quality only from jobs measured against the unquantized model (never a
    dequantized quantized source); file size and serving memory always.
    """
    from planner.engine.calibration import FormatMeasurement
    from quantjobs.backends.reference import from_metrics as reference_from_metrics
    from quantjobs.calibration import device_key
    from quantjobs.models import JobResult
    from quantjobs.sources import source_model

    if user is not None and not user.is_authenticated:
        return []
    # Every plan asks, and most users have measured nothing: a bare EXISTS answers
    # them for a fraction of the cost of the query below (issue 14, point 7).
    if user is not None and not _has_job_results(user_id=user.pk):
        return []
    results = JobResult.objects.filter(
        job__model_id=model_id, job__status__in=list(Job.KEEPS_ARTIFACTS)
    )
    if user is not None:
        results = results.filter(job__user=user)
    found = []
    for result in results.order_by("created_at").select_related("job", "artifact"):
        metrics = result.metrics or {}
        projection = result.projection or {}
        ppl, base = metrics.get("perplexity"), metrics.get("base_perplexity")
        change = None
        if ppl and base:
            reference = reference_from_metrics(metrics)
            requantized = (
                reference.get("quantized_source")
                if reference is not None
                else source_model(
                    kind=result.job.source_kind, ref=result.job.source_ref
                ).quantization
            )
            # Plans read quality as loss from the 16-bit model; loss on top of what
            # an already quantized source lost would read as too small.
            if not requantized:
                change = perplexity_change_pct(ppl, base, ndigits=3)
        context = projection.get("context_tokens")
        found.append(
            FormatMeasurement(
                model_id=model_id,
                format=result.format,
                source=f"{'your ' if user is not None else ''}job {result.job_id}",
                perplexity_increase_pct=change,
                kl_divergence=metrics.get("kl_divergence")
                if change is not None
                else None,
                artifact_bytes=result.artifact.size_bytes if result.artifact else None,
                memory_bytes=metrics.get("peak_memory_bytes"),
                memory_context_tokens=int(context) if context else None,
                device=device_key(projection.get("fingerprint")),
            )
        )
    return found


def _has_job_results(*, user_id: Any) -> bool:
    """Whether any of the user's jobs has a result, as one precompiled SELECT.

    The same question as ``JobResult.objects.filter(job__user=...).exists()``,
    asked on every plan: the ORM spends ~0.4 ms of CPU compiling it each time, the
    database ~0.02 ms answering it (issue 14, point 7).
    """
    from django.db import connections

    connection = connections[JobResult.objects.db]
    quote = connection.ops.quote_name
    job_field = JobResult._meta.get_field("job")
    user_column = Job._meta.get_field("user").column
    sql = (
        f"SELECT 1 FROM {quote(JobResult._meta.db_table)} r "
        f"JOIN {quote(Job._meta.db_table)} j "
        f"ON j.{quote(Job._meta.pk.column)} = r.{quote(job_field.column)} "  # type: ignore[union-attr]
        f"WHERE j.{quote(user_column)} = %s LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        return cursor.fetchone() is not None


def measuring_devices() -> list[Any]:
    """Every worker that announced a fingerprint, as a device plans can target."""
    from planner.measurements import MeasuringDevice

    devices = []
    for hostname, caps in WorkerHeartbeat.objects.values_list(
        "hostname", "capabilities"
    ):
        fingerprint = (
            (caps or {}).get("fingerprint") if isinstance(caps, dict) else None
        )
        if isinstance(fingerprint, dict) and fingerprint:
            devices.append(MeasuringDevice(hostname=hostname, fingerprint=fingerprint))
    return devices


def storage_for_user(*, user: AbstractBaseUser) -> dict[str, Any]:
    """Bytes the user's artifacts and uploads take, against the storage quota."""
    from django.conf import settings
    from django.db.models import Sum

    from quantjobs.artifacts import storage_used_bytes

    artifacts = storage_used_bytes(user_id=user.pk)
    uploads = int(
        ModelUpload.objects.filter(user=user).aggregate(t=Sum("size_bytes"))["t"] or 0
    )
    quota = int(settings.QUANTPLAN_MAX_STORAGE_BYTES)
    return {
        "artifact_bytes": artifacts,
        "upload_bytes": uploads,
        "used_bytes": artifacts,
        "quota_bytes": quota,
        "fraction": min(artifacts / quota, 1.0) if quota else 0.0,
    }


def result_row(result: Any) -> dict[str, Any]:
    """One format's measurements beside its projection, as the pages show them."""
    from quantjobs.projections import compare

    metrics = result.metrics or {}
    projection = result.projection or {}
    artifact = result.artifact
    size = artifact.size_bytes if artifact else None
    ppl, base = metrics.get("perplexity"), metrics.get("base_perplexity")
    peak = metrics.get("peak_memory_bytes")
    return {
        **metrics,
        "format": result.format,
        "artifact_bytes": size,
        "projected_artifact_bytes": projection.get("artifact_bytes"),
        "artifact_bytes_diff_pct": compare(projection.get("artifact_bytes"), size),
        "perplexity_change_pct": perplexity_change_pct(ppl, base, ndigits=3),
        "projected_memory_bytes": projection.get("memory_bytes"),
        "memory_diff_pct": compare(projection.get("memory_bytes"), peak),
    }


def job_results_for_compare(*, jobs: list[Job]) -> list[dict[str, Any]]:
    """Every measured format of these jobs, labelled by job, for one table and chart."""
    rows = []
    for index, job in enumerate(jobs, start=1):
        for result in job.results.select_related("artifact").order_by("format"):
            row = result_row(result)
            row["job"] = job
            row["job_label"] = f"{index}. {job.name or job.get_method_display()}"
            row["chart_label"] = f"{index}:{result.format}"
            rows.append(row)
    return rows


def tus_upload_get_for_user(*, user: AbstractBaseUser, tus_id: Any) -> TusUpload:
    """One of the user's resumable uploads in progress, or 404."""
    return get_owned(TusUpload.objects.filter(user=user), tus_id)


@dataclass(frozen=True)
class JobModel:
    """Which model a job quantized, and how it relates to the plan it is linked to."""

    name: str  # the model quantized, as pages, recipes and the CLI name it
    ident: str  # slug base for served model names
    plan_model: str | None  # the linked plan's model, when the job has a plan
    stand_in_for: str | None  # the plan's model, when the job quantized another one
    same_as_plan: bool  # the job is known to quantize the plan's own model
    source_quantization: str | None  # "Q4_1" when the source was already quantized
    reference: dict[str, Any] | None  # what quality is measured against


def job_model(*, job: Job) -> JobModel:
    """The model a job quantized, the plan's model it may stand in for, and the
    reference its quality is measured against (from its results once it has any)."""
    from quantjobs.backends.reference import dequantized, from_metrics
    from quantjobs.sources import plan_model, source_model

    source = source_model(kind=job.source_kind, ref=job.source_ref, user_id=job.user_id)
    reference = None
    for result in job.results.all():
        reference = from_metrics(result.metrics or {})
        if reference is not None:
            break
    quantization = source.quantization
    if reference is not None and reference.get("quantized_source"):
        quantization = str(reference.get("source_type") or quantization or "quantized")
    if reference is None and quantization and job.method != Job.Method.SELFTEST:
        reference = dequantized(quantization)
    plan = job.plan if job.plan_id and job.plan.user_id == job.user_id else None
    planned_name, same, stand_in = None, False, None
    if plan is not None:
        planned = plan_model(model_id=plan.model_id)
        planned_name = planned.name
        same = bool(planned.keys & source.keys)
        # A stand-in only when both models are known and differ: an upload of unknown
        # content is neither called the plan's model nor something else.
        if not same and planned.keys and source.keys:
            stand_in = planned_name
    name = source.name
    spec = job.model_spec if isinstance(job.model_spec, dict) else {}
    if job.source_kind == Job.SourceKind.LOCAL and spec.get("name"):
        name = str(spec["name"])  # read from the file itself, better than its path
    return JobModel(
        name=name,
        ident=source.ident,
        plan_model=planned_name,
        stand_in_for=stand_in,
        same_as_plan=same,
        source_quantization=quantization,
        reference=reference,
    )


def job_model_default_name(
    *, kind: str, ref: str, user_id: int, formats: list[str]
) -> str:
    """A job's name when its owner gives none: the model it quantizes and the formats."""
    from quantjobs.sources import source_model

    model = source_model(kind=kind, ref=ref, user_id=user_id)
    return f"{model.name} · {', '.join(formats)}"[:200]


@dataclass(frozen=True)
class PlanSource:
    """The source the job form offers for a plan: the plan's own model."""

    plan_id: str
    model_name: str
    kind: str  # "upload" or "hf"; "" when Quantplan knows no source of it
    ref: str
    label: str  # what the form says it preselected


def job_source_for_plan(*, user: AbstractBaseUser, plan_id: Any) -> PlanSource | None:
    """The plan's own model as a job source: an upload of it, else its Hugging Face
    id; None for a plan that is not the user's."""
    import uuid

    from planner.models import Plan
    from quantjobs.sources import plan_model, source_model

    try:
        plan = Plan.objects.filter(pk=uuid.UUID(str(plan_id)), user=user).first()
    except ValueError:
        return None
    if plan is None:
        return None
    planned = plan_model(model_id=plan.model_id)
    for upload in upload_list_for_user(user=user):
        held = source_model(kind=Job.SourceKind.UPLOAD, ref=str(upload.pk))
        if planned.keys & held.keys:
            return PlanSource(
                str(plan.pk),
                planned.name,
                Job.SourceKind.UPLOAD,
                str(upload.pk),
                f"your upload {upload.name or upload.filename}",
            )
    if planned.hf_id:
        return PlanSource(
            str(plan.pk),
            planned.name,
            Job.SourceKind.HF,
            planned.hf_id,
            f"its Hugging Face id {planned.hf_id}",
        )
    return PlanSource(str(plan.pk), planned.name, "", "", "")


def upload_sources_for_user(*, user: AbstractBaseUser) -> list[dict[str, Any]]:
    """The user's uploads as job sources, each with the quantization it already has."""
    from quantjobs.sources import source_model

    return [
        {
            "upload": upload,
            "model": source_model(kind=Job.SourceKind.UPLOAD, ref=str(upload.pk)),
        }
        for upload in upload_ready_list_for_user(user=user)[:20]
    ]


def queues_without_workers() -> set[str]:
    """Queues no recently seen worker consumes."""
    covered: set[str] = set()
    for worker in workers_recent():
        covered.update(worker.queues or [])
    return {"cpu", "gpu"} - covered
