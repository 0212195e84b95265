# Kept whole: job writes change now with the job lifecycle (issue 17.1); split later.
"""Writes for jobs: create, cancel, rerun, execute, reap. Views and tasks call these.

Dependencies point one way: tasks → services → runner → (broker, artifacts, models).
The runner alone decides how a job ends; these functions only ask it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from quantjobs import runner
from quantjobs.broker import (
    BROKER_DOWN_MESSAGE,
    BrokerUnavailable,
    broker_ping,
    job_enqueue,
)
from quantjobs.models import Job

logger = logging.getLogger(__name__)

METHOD_QUEUES: dict[str, str] = {
    Job.Method.GGUF: "cpu",
    Job.Method.RTN: "cpu",
    Job.Method.SELFTEST: "cpu",
    Job.Method.AWQ: "gpu",
    Job.Method.GPTQ: "gpu",
}
METHOD_FAMILIES: dict[str, str] = {
    Job.Method.GGUF: "gguf",
    Job.Method.AWQ: "awq",
    Job.Method.GPTQ: "gptq",
    Job.Method.RTN: "rtn",
}
MAX_FORMATS_PER_JOB = 12


class JobInputError(ValueError):
    """A job request that cannot run as given; ``field`` names what to change."""

    def __init__(self, message: str, *, field: str = "non_field_errors") -> None:
        super().__init__(message)
        self.field = field


class QuotaExceeded(Exception):
    """The user has reached a limit (active jobs or storage)."""


def _canonical_formats(method: str, formats: list[str]) -> list[str]:
    if not formats:
        raise JobInputError("Choose at least one format.", field="formats")
    if len(formats) > MAX_FORMATS_PER_JOB:
        raise JobInputError(
            f"At most {MAX_FORMATS_PER_JOB} formats per job; split the rest into another.",
            field="formats",
        )
    if method == Job.Method.SELFTEST:
        # "selftest", or several named ones ("selftest-a", "selftest-b") to exercise
        # multi-format jobs.
        named = [str(f) for f in formats]
        if any(not re.fullmatch(r"selftest(-[a-z0-9]{1,16})?", f) for f in named):
            raise JobInputError(
                "selftest jobs take the formats selftest or selftest-<name>.",
                field="formats",
            )
        return list(dict.fromkeys(named))
    from planner.engine import FormatError, parse_format

    canonical: list[str] = []
    for text in formats:
        try:
            spec = parse_format(str(text))
        except FormatError as exc:
            raise JobInputError(str(exc), field="formats") from None
        if spec.family != METHOD_FAMILIES[method]:
            raise JobInputError(
                f"{spec.id} is not a {method} format; {method} jobs take "
                f"{METHOD_FAMILIES[method]}-... formats.",
                field="formats",
            )
        if spec.id not in canonical:
            canonical.append(spec.id)
    return canonical


def _check_quota(user: AbstractBaseUser) -> None:
    from quantjobs.artifacts import storage_used_bytes

    active = Job.objects.filter(user=user, status__in=list(Job.ACTIVE_STATUSES)).count()
    if active >= settings.QUANTPLAN_MAX_ACTIVE_JOBS:
        raise QuotaExceeded(
            f"You have {active} jobs queued or running (the limit is "
            f"{settings.QUANTPLAN_MAX_ACTIVE_JOBS}); wait for one to finish or cancel one."
        )
    used = storage_used_bytes(user_id=user.pk)
    if used >= settings.QUANTPLAN_MAX_STORAGE_BYTES:
        raise QuotaExceeded(
            f"Your artifacts use {used / 1e9:.1f} GB of your "
            f"{settings.QUANTPLAN_MAX_STORAGE_BYTES / 1e9:.1f} GB; delete some first."
        )


def upload_check_room(*, user: AbstractBaseUser) -> None:
    """Raise QuotaExceeded when the user holds as many model uploads as allowed."""
    from quantjobs.models import ModelUpload

    limit = settings.QUANTPLAN_MAX_UPLOADS
    held = (
        ModelUpload.objects.filter(user=user)
        .exclude(status=ModelUpload.Status.REFUSED)
        .count()
    )
    if held >= limit:
        raise QuotaExceeded(
            f"You have {held} uploaded models and the limit is {limit}; delete one "
            "you no longer need (DELETE /api/v1/uploads/{id}/) to upload another."
        )


def job_create(
    *,
    user: AbstractBaseUser,
    method: str,
    formats: list[str],
    source_kind: str = Job.SourceKind.SAMPLE,
    source_ref: str = "",
    source_revision: str = "",
    name: str = "",
    eval_text_path: str = "",
    eval_text_name: str = "",
    eval_file: UploadedFile | None = None,
    options: dict[str, Any] | None = None,
    plan_id: Any = None,
    search_metric: str = "",
    search_max: float | None = None,
) -> Job:
    """Validate a job request, store it QUEUED and enqueue it after commit.

    ``eval_file`` (a user's evaluation text) is checked and stored only once
    everything else is accepted, and removed if the job is not created after all, so
    a refused request leaves no file. The queue follows from the method alone.

    With ``search_metric`` and ``search_max`` the job is an accuracy-aware search:
    ``formats`` are its candidates (default: the method's usual ladder), tried
    smallest first until one's measured loss is within the bar (quantjobs.search).
    """
    from quantjobs.sources import SourceError, validate_source

    if method not in METHOD_QUEUES:
        raise JobInputError(
            f"Unknown method {method!r}; choose one of: {', '.join(METHOD_QUEUES)}.",
            field="method",
        )
    bar = _search_bar(search_metric, search_max)
    if bar is not None and not formats:
        from quantjobs.search import DEFAULT_CANDIDATES

        formats = list(DEFAULT_CANDIDATES.get(method, []))
    canonical = _canonical_formats(method, list(formats))
    try:
        ref, model_id = validate_source(
            kind=source_kind, ref=source_ref, user_id=user.pk
        )
    except SourceError as exc:
        raise JobInputError(str(exc), field="source_ref") from None
    from quantjobs.families import source_family_error

    family_error = source_family_error(
        method=method, kind=source_kind, ref=ref, user_id=user.pk
    )
    if family_error:
        raise JobInputError(family_error, field="source_ref")
    if plan_id is not None:
        from planner.models import Plan

        # Another user's plan would lend its report to this job's recipes.
        if not Plan.objects.filter(pk=plan_id, user=user).exists():
            raise JobInputError(
                "No such plan: link one of your saved plans.", field="plan"
            )
    # The server alone decides: a queue is a kind of machine (gpu scales GPU workers).
    chosen_queue = METHOD_QUEUES[method]
    if not name.strip() and method != Job.Method.SELFTEST:
        from quantjobs.selectors import job_model_default_name

        # Named after the model it quantizes, never after the plan it came from.
        name = job_model_default_name(
            kind=source_kind, ref=ref, user_id=user.pk, formats=canonical
        )
    _check_quota(user)
    ok, _reason = broker_ping()
    if not ok:
        raise BrokerUnavailable(BROKER_DOWN_MESSAGE)
    from quantjobs.modelspec import spec_json_for_source

    # Read before the transaction: a GGUF is inspected in a child process.
    model_spec = spec_json_for_source(kind=source_kind, ref=ref, user_id=user.pk)
    search: dict[str, Any] = {}
    if bar is not None:
        from quantjobs.search import new_search, sized_candidates

        plan_report = None
        if plan_id is not None:
            from planner.models import Plan

            plan_report = (
                Plan.objects.filter(pk=plan_id).values_list("report", flat=True).first()
            )
        candidates, basis = sized_candidates(
            method=method,
            formats=canonical,
            model_spec=model_spec,
            model_id=model_id,
            plan_report=plan_report,
        )
        canonical = [c["format"] for c in candidates]
        search = new_search(bar, candidates, basis)
    stored_eval = ""
    if eval_file is not None:
        from quantjobs.uploads import UploadError, eval_text_store

        try:
            stored_eval, eval_text_name = eval_text_store(
                user_id=user.pk, uploaded=eval_file
            )
        except UploadError as exc:
            raise JobInputError(str(exc), field="eval_file") from None
        eval_text_path = stored_eval
    try:
        if bar is not None:
            _check_search_eval(bar.metric, eval_text_path, eval_text_name)
        with transaction.atomic():
            # One submission per user at a time, or a burst passes the quota between
            # count and insert: this no-op write locks the user's row (PostgreSQL) or
            # takes the write lock (SQLite) before the count is read again.
            get_user_model().objects.filter(pk=user.pk).update(
                last_login=F("last_login")
            )
            _check_quota(user)
            job = Job.objects.create(
                user=user,
                name=name[:200],
                method=method,
                formats=canonical,
                source_kind=source_kind,
                source_ref=ref,
                source_revision=source_revision,
                model_id=model_id,
                model_spec=model_spec,
                eval_text_path=eval_text_path,
                eval_text_name=eval_text_name,
                options=options or {},
                queue=chosen_queue,
                plan_id=plan_id,
                search=search,
            )
            job.append_log(f"Queued on the {chosen_queue} queue.")
            _log_what_is_measured(job)
            job_enqueue(job)
    except BaseException:
        if stored_eval:  # the job was refused after all: keep no file for it
            Path(stored_eval).unlink(missing_ok=True)
        raise
    return job


def _search_bar(metric: str, max_value: float | None) -> Any:
    """The validated bar of a search request, or None for a plain job."""
    if not metric and max_value is None:
        return None
    from planner.engine.search import METRICS
    from quantjobs.search import SearchError, search_bar_from_input

    if not metric:
        raise JobInputError(
            f"Say what the search bar measures: one of {', '.join(METRICS)}.",
            field="search_metric",
        )
    if max_value is None:
        raise JobInputError(
            "Give the largest loss the search may accept (search_max), e.g. 3 for "
            "a 3% perplexity change.",
            field="search_max",
        )
    try:
        bar = search_bar_from_input(metric, max_value)
    except SearchError as exc:
        field = "search_metric" if metric not in METRICS else "search_max"
        raise JobInputError(str(exc), field=field) from None
    return bar


def _check_search_eval(metric: str, eval_text_path: str, eval_text_name: str) -> None:
    """An exact-match bar needs prompt/answer pairs to score: refuse it without."""
    from planner.engine.search import EXACT_MATCH_DROP_POINTS

    if metric != EXACT_MATCH_DROP_POINTS:
        return
    from quantjobs.evaltext import EvalTextError, parse_eval_file

    pairs: tuple[tuple[str, str], ...] = ()
    if eval_text_path:
        path = Path(eval_text_path)
        try:
            parsed = parse_eval_file(eval_text_name or path.name, path.read_bytes())
            pairs = parsed.qa_pairs
        except (OSError, EvalTextError):
            pairs = ()
    if not pairs:
        raise JobInputError(
            "An exact-match bar needs a prompt/answer set: upload a .jsonl evaluation "
            'file with {"prompt": ..., "answer": ...} lines, or choose the perplexity '
            "change or KL divergence bar.",
            field="eval_file",
        )


def _log_what_is_measured(job: Job) -> None:
    """Say up front which model the job quantizes and what it is measured against."""
    from quantjobs.selectors import job_model

    if job.method == Job.Method.SELFTEST:
        return
    model = job_model(job=job)
    line = f"Model: {model.name}"
    if model.stand_in_for:
        line += (
            f", a stand-in for {model.plan_model}: its results measure {model.name}, "
            f"not {model.plan_model}"
        )
    job.append_log(f"{line}.")
    if model.reference is not None:
        job.append_log(f"Reference for quality: {model.reference['label']}.")
        if model.reference["warning"]:
            job.append_log(f"Warning: {model.reference['warning']}")


def job_cancel(*, job: Job) -> Job:
    """Cancel a queued job at once, or ask the runner of a running job to stop it."""
    if job.is_terminal:
        raise JobInputError(
            f"The job already ended ({job.get_status_display().lower()})."
        )
    # Once the flag is set no worker can claim the job (Job.start checks it): a job
    # still queued now ends here; a running one is stopped by its runner.
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.refresh_from_db()
    if job.status == Job.Status.QUEUED:
        runner.conclude(
            job,
            Job.Status.CANCELLED,
            "Cancelled by the user.",
            log="Cancelled before it started.",
        )
    elif not job.is_terminal:
        job.append_log("Cancel requested; stopping the running process.")
    job.refresh_from_db()
    return job


def job_rerun(*, job: Job, user: AbstractBaseUser) -> Job:
    """Queue a new job with the same method, formats, source and evaluation text."""
    return job_create(
        user=user,
        method=job.method,
        formats=list(job.formats),
        source_kind=job.source_kind,
        source_ref=job.source_ref,
        source_revision=job.source_revision,
        name=job.name,
        eval_text_path=job.eval_text_path,
        eval_text_name=job.eval_text_name,
        options={k: v for k, v in job.options.items() if not k.startswith("_")},
        plan_id=job.plan_id,
        search_metric=str((job.search or {}).get("metric") or ""),
        search_max=(job.search or {}).get("max"),
    )


def job_execute(*, job_id: str, worker: str) -> None:
    """Claim a queued job for this worker and run it; redelivered or cancelled → no-op."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("job %s: no such job", job_id)
        return
    if not job.start(worker=worker):
        logger.info("job %s: not queued (%s); skipping", job_id, job.status)
        return
    runner.execute(job)


def jobs_reap_stale(
    *, stale_after_s: float | None = None, reaper: str | None = None
) -> list[str]:
    """Settle running jobs whose worker stopped sending heartbeats, and queued jobs
    whose broker message vanished; returns the ids of the running jobs touched.

    ``reaper`` is the calling worker's name: a job it runs itself whose child process
    is still alive is only slow to report (a starved CPU), never lost.
    """
    stale_after = stale_after_s or settings.QUANTPLAN_HEARTBEAT_STALE_S
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    touched: list[str] = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff):
        if reaper and job.worker == reaper and _child_alive(job):
            continue
        _kill_orphan_child(job)
        # Another reaper may have settled it since the query: settle each once.
        if Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=cutoff
        ).exists():
            runner.settle_lost(job)
            touched.append(str(job.pk))
    # Queued jobs whose message never reached the broker, or was lost there.
    queued_cutoff = timezone.now() - timedelta(
        seconds=settings.QUANTPLAN_RESEND_AFTER_S
    )
    for job in Job.objects.filter(status=Job.Status.QUEUED).filter(
        Q(enqueued_at__lt=queued_cutoff)
        | Q(enqueued_at__isnull=True, created_at__lt=queued_cutoff)
    ):
        runner.settle_queued(job)
    from quantjobs.uploads import model_uploads_expire_unchecked

    model_uploads_expire_unchecked(
        older_than_s=settings.QUANTPLAN_UPLOAD_CHECK_MAX_WAIT_S
    )
    _tus_expire_abandoned(older_than_s=settings.QUANTPLAN_TUS_ABANDONED_AFTER_S)
    return touched


def _tus_expire_abandoned(*, older_than_s: float) -> int:
    """Remove resumable (tus) uploads that received nothing for ``older_than_s``:
    an unfinished one's partial file goes with its row, so a closed tab leaves
    nothing on disk. Returns how many were removed."""
    from quantjobs.models import TusUpload

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    removed = 0
    for upload in TusUpload.objects.filter(updated_at__lt=cutoff):
        (Path(settings.QUANTPLAN_UPLOAD_ROOT) / upload.path).unlink(missing_ok=True)
        upload.delete()
        removed += 1
    return removed


def jobs_interrupt_for_worker(*, worker: str) -> int:
    """A worker is shutting down: ask its running jobs to stop and requeue."""
    return Job.objects.filter(status=Job.Status.RUNNING, worker=worker).update(
        interrupt_requested=True
    )


def _child_alive(job: Job) -> bool:
    """Whether the job's child process still runs on this host."""
    pid = job.options.get("_child_pid") if isinstance(job.options, dict) else None
    if not isinstance(pid, int):
        return False
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _kill_orphan_child(job: Job) -> None:
    """Kill the child process group a dead worker left behind on this host."""
    pid = job.options.get("_child_pid") if isinstance(job.options, dict) else None
    if not isinstance(pid, int) or job.worker.split("@")[-1] != os.uname().nodename:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if len(name) > 200:
        raise JobInputError(
            f"The name is {len(name)} characters long; shorten it to 200.", field="name"
        )
    return name


def job_rename(*, job: Job, name: str) -> Job:
    """Give a job a new name (empty: it is called by its method)."""
    job.name = _clean_name(name)
    job.save(update_fields=["name"])
    return job


def job_delete(*, job: Job) -> None:
    """Delete an ended job with its results and artifact files."""
    from quantjobs.artifacts import delete_artifact

    if not job.is_terminal:
        raise JobInputError(
            "The job is still queued or running; cancel it first, then delete it."
        )
    for artifact in list(job.artifacts.all()):
        delete_artifact(artifact)
    job.delete()


def artifact_rename(*, artifact: Any, filename: str) -> Any:
    """Change the name an artifact downloads as (the stored file keeps its path)."""
    from pathlib import PurePosixPath

    name = (filename or "").strip()
    if (
        not name
        or len(name) > 255
        or PurePosixPath(name).name != name
        or name
        in (
            ".",
            "..",
        )
    ):
        raise JobInputError(
            "Give a file name of 1 to 255 characters without '/' or '\\'.",
            field="filename",
        )
    if "\\" in name or any(ord(c) < 32 for c in name):
        raise JobInputError(
            "Give a file name without '\\' or control characters.", field="filename"
        )
    old_suffix = PurePosixPath(artifact.filename).suffix
    if old_suffix and not name.endswith(old_suffix):
        name += old_suffix
    artifact.filename = name
    artifact.save(update_fields=["filename"])
    return artifact


def artifact_remove(*, artifact: Any) -> None:
    """Delete an artifact's file and row; the job keeps its measured results."""
    from quantjobs.artifacts import delete_artifact

    delete_artifact(artifact)


def upload_rename(*, upload: Any, filename: str) -> Any:
    """Change the name an upload is listed under (the stored file keeps its path)."""
    name = (filename or "").strip()
    if not name or len(name) > 255 or "/" in name or "\\" in name:
        raise JobInputError(
            "Give a name of 1 to 255 characters without '/' or '\\'.", field="filename"
        )
    upload.filename = name
    upload.save(update_fields=["filename"])
    return upload


def upload_remove(*, upload: Any) -> None:
    """Delete an upload's files, unless a queued or running job still reads it."""
    from quantjobs.uploads import model_upload_delete

    busy = Job.objects.filter(
        source_kind=Job.SourceKind.UPLOAD,
        source_ref=str(upload.pk),
        status__in=list(Job.ACTIVE_STATUSES),
    ).exists()
    if busy:
        raise JobInputError(
            "A queued or running job reads this upload; wait for it to end or cancel "
            "it, then delete the upload."
        )
    model_upload_delete(upload=upload)
