"""The job-time outlook: a job's queue position and estimated start and finish,
from recent jobs' durations, its calibration tokens and a search's candidates."""

from __future__ import annotations

from dataclasses import dataclass

from quantjobs.models import Job

# Characters per token of English prose, to guess a calibration text's tokens
# before any tokenizer has seen it (the importance matrix reports the real count).
CHARS_PER_TOKEN = 4.0


def job_calibration_tokens(*, job: Job) -> tuple[int, int]:
    """(importance matrices the job will compute, calibration tokens each will use,
    estimated from the text's length, its 512-token chunks and the
    ``imatrix_chunks`` cap). One at most: the job's formats share the matrix."""
    if job.method != Job.Method.GGUF:
        return 0, 0
    from quantjobs.backends.base import BackendError
    from quantjobs.backends.gguf.backend import want_imatrix
    from quantjobs.backends.gguf.ftypes import parse_gguf_format

    options = job.options or {}
    count = 0
    for fmt in job.formats or []:
        try:
            if want_imatrix(parse_gguf_format(fmt), options.get("imatrix")):
                count += 1
        except BackendError:
            continue
    if not count:
        return 0, 0
    count = 1  # made for the first format that needs it, reused by the others
    path = options.get("calibration_text_path")
    chars: int
    if path:
        import os

        try:
            chars = os.stat(path).st_size
        except OSError:
            return count, 0
    else:
        from quantjobs.evaltext import default_calibration_text

        chars = len(default_calibration_text())
    n_ctx = int(options.get("imatrix_context_tokens", 512) or 512)
    chunks = int(chars / CHARS_PER_TOKEN) // n_ctx
    cap = options.get("imatrix_chunks")
    if cap:
        chunks = min(chunks, int(cap))
    return count, chunks * n_ctx


# How many finished jobs of a method the duration estimate looks back on.
ESTIMATE_HISTORY = 20


def job_duration_estimate_s(
    *, method: str, formats_count: int, job: Job | None = None
) -> float | None:
    """An estimate of a job's run time: the median seconds per format of the last
    finished jobs of the same method (any user's), times its number of formats,
    plus the importance-matrix time its calibration tokens will take (seconds per
    calibration token, from the same history). A search counts every candidate:
    it may stop earlier, so its estimate is an upper bound. None while no such job
    has finished."""
    from statistics import median

    done = list(
        Job.objects.filter(
            method=method,
            status=Job.Status.SUCCEEDED,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .prefetch_related("results")[:ESTIMATE_HISTORY]
    )
    per_format: list[float] = []
    per_token: list[float] = []
    for past in done:
        assert past.started_at is not None and past.finished_at is not None
        total_s = (past.finished_at - past.started_at).total_seconds()
        calibration_s = 0.0
        for result in past.results.all():
            imatrix = ((result.metrics or {}).get("metadata") or {}).get("imatrix")
            if (
                imatrix
                and imatrix.get("tokens")
                and imatrix.get("seconds")
                and not imatrix.get("reused")  # made once, for an earlier format
            ):
                calibration_s += float(imatrix["seconds"])
                per_token.append(float(imatrix["seconds"]) / float(imatrix["tokens"]))
        # A search that stopped early ran fewer formats than it listed.
        ran = len(past.results.all()) if past.search else len(past.formats or [])
        per_format.append(max(total_s - calibration_s, 0.0) / max(ran, 1))
    if not per_format:
        return None
    estimate = median(per_format) * max(formats_count, 1)
    if job is not None and per_token:
        imatrix_formats, tokens_each = job_calibration_tokens(job=job)
        estimate += median(per_token) * tokens_each * imatrix_formats
    return estimate


@dataclass(frozen=True)
class QueueOutlook:
    """Where a job stands in its queue, and when it should start and finish (estimates)."""

    position: int | None  # 1: next to start; None once it left the queue
    jobs_ahead: int  # queued before it on the same queue, any user's
    running: int  # jobs running on that queue now
    workers: int  # workers consuming that queue now
    estimate_s: float | None  # its own run time, estimated
    start_in_s: float | None  # from now, estimated
    finish_in_s: float | None  # from now, estimated
    elapsed_s: float | None  # since it started (or ran, once ended)
    waited_s: float  # in the queue before starting (or so far)
    # A search may stop before its last candidate: its estimate is for all of them.
    upper_bound: bool = False
    # Calibration tokens its importance matrices will use (estimated), counted in.
    calibration_tokens: int = 0


def job_queue_outlook(*, job: Job) -> QueueOutlook:
    """The queue position and the estimated start and finish of a job, from the
    duration estimates of the jobs ahead of it and of itself."""
    from django.utils import timezone

    now = timezone.now()
    estimate = job_duration_estimate_s(
        method=job.method, formats_count=len(job.formats or []), job=job
    )
    waited = ((job.started_at or now) - job.created_at).total_seconds()
    imatrix_formats, tokens_each = job_calibration_tokens(job=job)
    extra = {
        "upper_bound": bool(job.search),
        "calibration_tokens": imatrix_formats * tokens_each,
    }
    from quantjobs.selectors import workers_recent

    workers = sum(1 for w in workers_recent() if job.queue in (w.queues or []))
    running_jobs = list(
        Job.objects.filter(queue=job.queue, status=Job.Status.RUNNING).only(
            "method", "formats", "options", "started_at"
        )
    )
    if job.status != Job.Status.QUEUED:
        finish_in = None
        if job.status == Job.Status.RUNNING and estimate is not None:
            finish_in = max(estimate - (job.duration_s or 0.0), 0.0)
        return QueueOutlook(
            position=None,
            jobs_ahead=0,
            running=len(running_jobs),
            workers=workers,
            estimate_s=estimate,
            start_in_s=None,
            finish_in_s=finish_in,
            elapsed_s=job.duration_s,
            waited_s=max(waited, 0.0),
            **extra,
        )
    ahead = list(
        Job.objects.filter(
            queue=job.queue, status=Job.Status.QUEUED, created_at__lt=job.created_at
        ).only("method", "formats", "options")
    )
    work_s: float | None = 0.0
    for other in running_jobs:
        other_s = job_duration_estimate_s(
            method=other.method, formats_count=len(other.formats or []), job=other
        )
        if other_s is None or work_s is None:
            work_s = None
            continue
        work_s += max(other_s - (other.duration_s or 0.0), 0.0)
    for other in ahead:
        other_s = job_duration_estimate_s(
            method=other.method, formats_count=len(other.formats or []), job=other
        )
        work_s = None if other_s is None or work_s is None else work_s + other_s
    start_in = None if work_s is None or not workers else work_s / workers
    return QueueOutlook(
        position=len(ahead) + 1,
        jobs_ahead=len(ahead),
        running=len(running_jobs),
        workers=workers,
        estimate_s=estimate,
        start_in_s=start_in,
        finish_in_s=None
        if start_in is None or estimate is None
        else start_in + estimate,
        elapsed_s=None,
        waited_s=max(waited, 0.0),
        **extra,
    )
