"""The job runner: claims a job, runs its backend in a child process, maps outcomes.

The child (``quantjobs.backends.child``) runs in its own process group so that a
cancel, a time limit or a lost worker can kill it with everything it started.
Outcomes map to the Job row in one place:

- a ``BackendError`` in the child → FAILED with its message;
- a crash or anything unexpected → FAILED with a short message, details in the log;
- the job's time limit → TIMED_OUT; a cancel request → CANCELLED.

Artifacts are re-hashed and moved into place with ``os.replace`` before the job is
marked SUCCEEDED; the work directory is removed whatever happens.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from quantjobs.models import Artifact, Job, JobResult

logger = logging.getLogger(__name__)

POLL_S = 0.5
HEARTBEAT_S = 5.0
KILL_GRACE_S = 5.0
STDERR_TAIL_CHARS = 4000


class JobCancelled(Exception):
    """The user asked to cancel the running job."""


class JobTimedOut(Exception):
    """The job ran past its time limit."""


class JobInterrupted(Exception):
    """The worker running the job is shutting down (SIGTERM)."""


@dataclass
class ChildOutcome:
    """What the child process reported before it exited."""

    returncode: int | None = None
    error: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


def job_timeout_s(job: Job) -> float:
    """The job's time limit: its own option if smaller than the worker's soft limit."""
    limit = float(settings.CELERY_TASK_SOFT_TIME_LIMIT)
    own = job.options.get("timeout_s") if isinstance(job.options, dict) else None
    if isinstance(own, (int, float)) and own > 0:
        limit = min(limit, float(own))
    return limit


def work_dir_for(job: Job) -> Path:
    """The private temporary directory of this attempt of the job."""
    return Path(settings.QUANTPLAN_WORK_ROOT) / str(job.pk) / f"attempt-{job.attempts}"


def build_child_request(job: Job, work_dir: Path) -> dict[str, Any]:
    """The JSON request the child process runs."""
    from quantjobs.sources import child_source_for

    return {
        "job_id": str(job.pk),
        "method": job.method,
        "formats": list(job.formats),
        "source": child_source_for(job),
        "work_dir": str(work_dir),
        "cache_dir": str(Path(settings.QUANTPLAN_WORK_ROOT) / "cache"),
        "eval_text_path": job.eval_text_path or None,
        "options": job.options or {},
        "threads": settings.QUANTPLAN_WORKER_THREADS,
    }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child and everything it started: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _reader(stream: Any, sink: queue.Queue[dict[str, Any] | None]) -> None:
    for raw in iter(stream.readline, b""):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            sink.put(event)
    sink.put(None)


class JobProgress:
    """Writes progress, stage, heartbeat and log lines to the Job row, rate limited."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last_write = 0.0
        self.pending: dict[str, Any] = {}

    def update(
        self, *, fraction: float | None = None, stage: str | None = None
    ) -> None:
        if fraction is not None:
            self.pending["progress"] = max(0.0, min(0.999, float(fraction)))
        if stage is not None:
            self.pending["stage"] = stage[:200]
        self.flush(force=False)

    def flush(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < POLL_S:
            return
        fields = {**self.pending, "heartbeat_at": timezone.now()}
        Job.objects.filter(pk=self.job.pk, status=Job.Status.RUNNING).update(**fields)
        self.pending.clear()
        self.last_write = now

    def stop_requested(self) -> str | None:
        """'cancel' or 'interrupt' when the job must stop now, else None."""
        flags = (
            Job.objects.filter(pk=self.job.pk)
            .values_list("cancel_requested", "interrupt_requested")
            .first()
        )
        if flags is None or flags[0]:
            return "cancel"  # a deleted job is as good as cancelled
        return "interrupt" if flags[1] else None


def run_child(job: Job, work_dir: Path) -> ChildOutcome:
    """Run the backend for ``job`` in a child process and collect what it reports."""
    request_path = work_dir / "request.json"
    request_path.write_text(json.dumps(build_child_request(job, work_dir)))
    stderr_path = work_dir / "stderr.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(settings.QUANTPLAN_WORKER_THREADS),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["QUANTPLAN_PARENT_PID"] = str(os.getpid())
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quantjobs.backends.child", str(request_path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=str(settings.BASE_DIR),
            env=env,
            start_new_session=True,  # its own process group, killed as one
        )
        # Tell the reaper which process group to kill if this worker dies.
        Job.objects.filter(pk=job.pk).update(
            options={**job.options, "_child_pid": proc.pid}
        )
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(
            target=_reader, args=(proc.stdout, events), daemon=True
        ).start()
        outcome = ChildOutcome()
        tracker = JobProgress(job)
        deadline = time.monotonic() + job_timeout_s(job)
        last_check = 0.0
        try:
            while True:
                try:
                    event = events.get(timeout=POLL_S)
                except queue.Empty:
                    event = {}
                if event is None:  # the child closed its stdout: it is exiting
                    try:
                        proc.wait(timeout=KILL_GRACE_S * 6)
                    except subprocess.TimeoutExpired:
                        pass
                    break
                _handle_event(job, event, outcome, tracker)
                now = time.monotonic()
                if now - last_check >= POLL_S:
                    last_check = now
                    tracker.flush(force=False)
                    if now > deadline:
                        raise JobTimedOut
                    stop = tracker.stop_requested()
                    if stop == "cancel":
                        raise JobCancelled
                    if stop == "interrupt":
                        raise JobInterrupted
        finally:
            _kill_group(proc)
            tracker.flush(force=True)
        outcome.returncode = proc.wait()
    return outcome


def _handle_event(
    job: Job, event: dict[str, Any], outcome: ChildOutcome, tracker: JobProgress
) -> None:
    kind = event.get("event")
    if kind == "progress":
        tracker.update(
            fraction=event.get("fraction"), stage=str(event.get("stage", ""))
        )
    elif kind == "log":
        job.append_log(str(event.get("line", "")))
    elif kind == "revision":
        Job.objects.filter(pk=job.pk).update(
            source_revision=str(event["revision"])[:64]
        )
    elif kind == "model_config":
        _store_model_spec(job, event.get("config"))
    elif kind == "result":
        publish_result(job, event)
        outcome.results.append(event)
        job.append_log(f"{event.get('format')}: artifact checked and stored")
    elif kind == "error":
        outcome.error = event
    elif kind == "done":
        outcome.done = True


def _store_model_spec(job: Job, config: Any) -> None:
    """The downloaded model's config.json, sized once so its results carry projections."""
    from quantjobs.modelspec import (
        ModelSpecError,
        model_name_from_config,
        spec_from_config,
        spec_to_json,
    )

    if not isinstance(config, dict) or job.model_spec:
        return
    name = model_name_from_config(config, job.source_ref)
    try:
        spec = spec_to_json(
            spec_from_config(config, model_id=job.source_ref, name=name),
            source="config.json",
        )
    except ModelSpecError as exc:
        spec = {"error": str(exc)}
    Job.objects.filter(pk=job.pk).update(model_spec=spec)
    job.model_spec = spec


def publish_result(job: Job, event: dict[str, Any]) -> JobResult:
    """Check an artifact the child wrote, move it into place, record it."""
    from quantjobs.artifacts import publish_artifact
    from quantjobs.projections import (
        device_projection_for,
        fingerprint_of_worker,
        projection_for,
    )

    work_root = Path(settings.QUANTPLAN_WORK_ROOT).resolve()
    source = Path(str(event["artifact_path"])).resolve()
    if work_root not in source.parents:
        raise RuntimeError(f"artifact outside the work directory: {source}")
    fmt = str(event["format"])
    with transaction.atomic():
        artifact = publish_artifact(
            job=job,
            fmt=fmt,
            temp_path=source,
            expected_sha256=str(event["sha256"]),
        )
        result, _ = JobResult.objects.update_or_create(
            job=job,
            format=fmt,
            defaults={
                "artifact": artifact,
                "metrics": {**event.get("metrics", {}), **_extra_metrics(event)},
                "projection": {
                    **projection_for(job, fmt),
                    **device_projection_for(
                        job,
                        fmt,
                        fingerprint_of_worker(job.worker),
                        (event.get("metrics") or {}).get("serving") or {},
                    ),
                },
            },
        )
    _record_calibration(result)
    return result


def _record_calibration(result: JobResult) -> None:
    # The ledger learns from the result; it must never cost the user the result.
    from quantjobs.calibration import calibration_record_result

    try:
        calibration_record_result(result=result)
    except Exception:
        logger.warning("calibration ledger: %s not recorded", result, exc_info=True)


def _extra_metrics(event: dict[str, Any]) -> dict[str, Any]:
    meta = event.get("metadata") or {}
    return {
        "artifact_kind": event.get("artifact_kind"),
        "metadata": meta,
        "reference": event.get("reference"),
    }


def _stderr_tail(work_dir: Path) -> str:
    try:
        data = (work_dir / "stderr.log").read_bytes()[-STDERR_TAIL_CHARS:]
    except OSError:
        return ""
    return data.decode(errors="replace")


def _remove_published(job: Job) -> None:
    """Drop what a cancelled or failed attempt published, so nothing partial is served."""
    from quantjobs.artifacts import delete_artifact

    for artifact in Artifact.objects.filter(job=job):
        delete_artifact(artifact)


def execute(job: Job) -> None:
    """Run a claimed (RUNNING) job to a terminal status."""
    work_dir = work_dir_for(job)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    job.append_log(
        f"Attempt {job.attempts} on {job.worker}: {job.method} "
        f"{', '.join(job.formats)} from {job.source_kind} {job.source_ref}"
    )
    try:
        outcome = run_child(job, work_dir)
    except JobCancelled:
        _remove_published(job)
        job.append_log("Cancelled by the user; the child process was stopped.")
        job.finish(Job.Status.CANCELLED, "Cancelled by the user.")
        return
    except JobInterrupted:
        _remove_published(job)
        _requeue_after_interrupt(job)
        return
    except JobTimedOut:
        _remove_published(job)
        limit = job_timeout_s(job)
        job.append_log(
            f"Time limit of {limit:.0f} s reached; the child process was stopped."
        )
        job.finish(
            Job.Status.TIMED_OUT,
            f"The job ran longer than its time limit ({limit:.0f} s) and was stopped. "
            "Try fewer formats, a smaller model, or ask for a longer limit.",
        )
        return
    except OSError as exc:
        _remove_published(job)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            job.append_log(f"Disk full while storing the artifact: {exc}")
            job.finish(
                Job.Status.FAILED,
                "The worker's disk is full; the partial file was removed. Free space "
                "or ask the operator for more, then run the job again.",
            )
        else:
            logger.exception("job %s: runner I/O failure", job.pk)
            job.append_log(f"Runner I/O error: {exc}")
            job.finish(
                Job.Status.FAILED, "Storage error while running the job; see the log."
            )
        return
    except Exception as exc:
        logger.exception("job %s: runner failure", job.pk)
        job.append_log(f"Runner error: {type(exc).__name__}: {exc}")
        _remove_published(job)
        job.finish(
            Job.Status.FAILED, "Internal error while running the job; see the log."
        )
        return
    finally:
        stderr_tail = _stderr_tail(work_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        try:
            work_dir.parent.rmdir()  # only when no other attempt is in there
        except OSError:
            pass
    _finish_from_outcome(job, outcome, stderr_tail)


def _requeue_after_interrupt(job: Job) -> None:
    """The worker is stopping: give the job back to the queue once, else fail it."""
    from quantjobs.services import job_enqueue

    job.refresh_from_db()
    if job.attempts < job.max_attempts:
        requeued = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED,
            interrupt_requested=False,
            stage="Requeued: its worker was stopped",
            progress=0.0,
        )
        if requeued:
            job.append_log(
                f"Worker {job.worker} is shutting down; the job goes back to the queue "
                f"(attempt {job.attempts + 1} of {job.max_attempts} next)."
            )
            job_enqueue(job)
        return
    job.append_log("Worker shutting down, and no attempts are left.")
    job.finish(
        Job.Status.FAILED,
        f"The workers running this job were stopped {job.attempts} times; run it again.",
    )


def _finish_from_outcome(job: Job, outcome: ChildOutcome, stderr_tail: str) -> None:
    if outcome.error is not None:
        message = str(outcome.error.get("message", "unknown error"))
        if outcome.error.get("kind") == "backend":
            job.append_log(f"Failed: {message}")
            job.finish(Job.Status.FAILED, message)
        else:
            job.append_log(f"Internal error: {message}")
            for line in str(outcome.error.get("traceback", "")).splitlines()[-15:]:
                job.append_log(line)
            job.finish(
                Job.Status.FAILED,
                "Internal error in the quantization backend; the log has the details.",
            )
        return
    if not outcome.done or outcome.returncode != 0:
        code = outcome.returncode
        signame = ""
        if code is not None and code < 0:
            try:
                signame = f" ({signal.Signals(-code).name})"
            except ValueError:
                signame = ""
        job.append_log(f"The backend process exited with code {code}{signame}.")
        for line in stderr_tail.splitlines()[-10:]:
            job.append_log(f"stderr: {line}")
        job.finish(
            Job.Status.FAILED,
            f"The backend process crashed (exit code {code}{signame}); a damaged model "
            "file or too little memory are the usual causes. See the log.",
        )
        return
    job.finish(Job.Status.SUCCEEDED)
    job.append_log("Succeeded.")
