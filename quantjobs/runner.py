# Kept whole: the one place that decides a job's fate, reworked now with the lifecycle.
"""The job runner: the one place that decides a job's fate.

The child (``quantjobs.backends.child``) runs in its own process group so that a
cancel, a time limit or a lost worker can kill it with everything it started.
Every way a job can end maps to the Job row here, and only here:

- a ``BackendError`` in the child → FAILED with its message, or PARTIAL when
  earlier formats were already stored (they stay; ``format_errors`` names the
  format that failed and why);
- a crash or anything unexpected → FAILED with a short message, details in the log;
- the job's own time limit or the worker's soft time limit → TIMED_OUT; a job
  lost after running past the hard limit → TIMED_OUT (``settle_lost``);
- a cancel request → CANCELLED;
- SIGTERM of the worker or a lost worker → back to the queue while attempts are
  left (what the lost attempt published is removed first), else FAILED;
- a queued job whose broker message vanished → sent again, at most
  ``QUANTPLAN_MAX_SENDS`` times, then FAILED (``settle_queued``).

Only SUCCEEDED and PARTIAL keep published artifacts; every other end removes them.
Artifacts are hashed and moved into place (``quantjobs.artifacts``) before the job
is marked SUCCEEDED; the work directory is removed whatever happens.
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
from django.utils import timezone

from quantjobs.artifacts import delete_artifact, publish_result
from quantjobs.broker import job_enqueue, message_pending
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
    limits: dict[str, Any] = field(default_factory=dict)


def _soft_time_limit_exceeded() -> type[BaseException]:
    from celery.exceptions import SoftTimeLimitExceeded

    return SoftTimeLimitExceeded


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
    from quantjobs.limits import job_limits
    from quantjobs.sources import child_source_for

    return {
        "limits": job_limits(job),
        "job_id": str(job.pk),
        "method": job.method,
        "formats": list(job.formats),
        "source": child_source_for(job),
        "work_dir": str(work_dir),
        "cache_dir": str(Path(settings.QUANTPLAN_WORK_ROOT) / "cache"),
        "eval_text_path": job.eval_text_path or None,
        "options": job.options or {},
        "threads": settings.QUANTPLAN_WORKER_THREADS,
        # A search: the child judges each candidate and stops at the first within.
        "search": (
            {"metric": job.search["metric"], "max": job.search["max"]}
            if job.search
            else None
        ),
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
    request = build_child_request(job, work_dir)
    request_path.write_text(json.dumps(request))
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
        outcome = ChildOutcome(limits=dict(request["limits"]))
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
        publish_result(job=job, event=event)
        outcome.results.append(event)
        job.append_log(f"{event.get('format')}: artifact checked and stored")
    elif kind == "trial":
        from quantjobs.search import search_record_trial

        search_record_trial(job=job, event=event)
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


def _stderr_tail(work_dir: Path) -> str:
    try:
        data = (work_dir / "stderr.log").read_bytes()[-STDERR_TAIL_CHARS:]
    except OSError:
        return ""
    return data.decode(errors="replace")


def discard_published(job: Job) -> None:
    """Drop what an attempt published (files, rows, results), so nothing partial or
    left over from a lost attempt is listed, served or counted."""
    for artifact in Artifact.objects.filter(job=job):
        delete_artifact(artifact)
    JobResult.objects.filter(job=job).delete()


def remove_attempt_folder(job: Job) -> None:
    """Delete the work folder of the job's current attempt (shared storage)."""
    folder = work_dir_for(job)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # only when no other attempt is in there
    except OSError:
        pass


def conclude(
    job: Job,
    status: str,
    error: str = "",
    *,
    log: str = "",
    format_errors: dict[str, str] | None = None,
) -> bool:
    """End the job with ``status``: every terminal transition passes here.

    Only SUCCEEDED and PARTIAL keep what was published.
    """
    if status not in Job.KEEPS_ARTIFACTS:
        discard_published(job)
    ended = job.finish(status, error, format_errors=format_errors)
    if ended and log:
        job.append_log(log)
    return ended


def retry_or_fail(job: Job, *, why: str, stage: str, failure: str) -> bool:
    """Give a running job back to the queue for another attempt, or fail it.

    What the lost attempt published is removed first: the retry replaces it.
    Returns whether the job was requeued.
    """
    job.refresh_from_db()
    if job.cancel_requested:
        conclude(job, Job.Status.CANCELLED, "Cancelled by the user.")
        return False
    if job.attempts < job.max_attempts:
        discard_published(job)
        if job.requeue(stage=stage):
            job.append_log(
                f"{why}; the job goes back to the queue "
                f"(attempt {job.attempts + 1} of {job.max_attempts} next)."
            )
            job_enqueue(job)
            return True
        return False
    conclude(job, Job.Status.FAILED, failure, log=f"{why}; no attempts are left.")
    return False


def settle_lost(job: Job) -> None:
    """A running job's worker stopped answering: time out, retry, or fail it."""
    remove_attempt_folder(job)
    ran_s = 0.0
    if job.started_at and job.heartbeat_at:
        ran_s = (job.heartbeat_at - job.started_at).total_seconds()
    hard_s = float(settings.CELERY_TASK_TIME_LIMIT)
    if ran_s >= hard_s - HEARTBEAT_S:
        # The worker's hard time limit killed it (the soft one and the job's own
        # are the runner's, which was alive to act on them): a retry would die too.
        conclude(
            job,
            Job.Status.TIMED_OUT,
            _timed_out_message(hard_s),
            log=f"The worker stopped the job after {ran_s:.0f} s (its time limit).",
        )
        return
    retry_or_fail(
        job,
        why=f"Worker {job.worker or '?'} stopped answering",
        stage="Requeued after worker loss",
        failure=f"The worker running this job was lost {job.attempts} times; "
        "it may need more memory than the worker has.",
    )


def settle_queued(job: Job) -> None:
    """A queued job past its wait: send it again if its message vanished.

    A job whose message is still in the broker just waits for a worker; one sent
    ``QUANTPLAN_MAX_SENDS`` times and lost each time fails, freeing its slot.
    """
    pending = message_pending(queue=job.queue, task_id=job.celery_task_id)
    if pending is None or pending:
        return  # the broker cannot say (or holds it): nothing to do now
    if job.sends >= settings.QUANTPLAN_MAX_SENDS:
        conclude(
            job,
            Job.Status.FAILED,
            f"The job queue lost this job's message {job.sends} times; it never "
            "started. Run it again, and ask the operator to check the broker.",
            log="Its message was not in the broker; no resends are left.",
        )
        return
    if job.celery_task_id:
        job.append_log("Its message was not in the broker; sending it again.")
    job_enqueue(job)


def _timed_out_message(limit_s: float) -> str:
    return (
        f"The job ran longer than its time limit ({limit_s:.0f} s) and was stopped. "
        "Try fewer formats, a smaller model, or ask for a longer limit."
    )


def execute(job: Job) -> None:
    """Run a claimed (RUNNING) job to a terminal status (or back to the queue)."""
    # A retry replaces what an earlier, lost attempt may have left.
    discard_published(job)
    if job.search:
        from quantjobs.search import search_reset

        search_reset(job=job)
    work_dir = work_dir_for(job)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    job.append_log(
        f"Attempt {job.attempts} on {job.worker}: {job.method} "
        f"{', '.join(job.formats)} from {job.source_kind} {job.source_ref}"
    )
    outcome: ChildOutcome | None = None
    stderr_tail = ""
    try:
        try:
            outcome = run_child(job, work_dir)
        finally:
            stderr_tail = _stderr_tail(work_dir)
            shutil.rmtree(work_dir, ignore_errors=True)
            try:
                work_dir.parent.rmdir()  # only when no other attempt is in there
            except OSError:
                pass
    except JobCancelled:
        conclude(
            job,
            Job.Status.CANCELLED,
            "Cancelled by the user.",
            log="Cancelled by the user; the child process was stopped.",
        )
    except JobInterrupted:
        retry_or_fail(
            job,
            why=f"Worker {job.worker} is shutting down",
            stage="Requeued: its worker was stopped",
            failure=f"The workers running this job were stopped {job.attempts} "
            "times; run it again.",
        )
    except (JobTimedOut, _soft_time_limit_exceeded()):
        limit = job_timeout_s(job)
        conclude(
            job,
            Job.Status.TIMED_OUT,
            _timed_out_message(limit),
            log=f"Time limit of {limit:.0f} s reached; the child process was stopped.",
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            conclude(
                job,
                Job.Status.FAILED,
                "The worker's disk is full; the partial file was removed. Free space "
                "or ask the operator for more, then run the job again.",
                log=f"Disk full while storing the artifact: {exc}",
            )
        else:
            logger.exception("job %s: runner I/O failure", job.pk)
            conclude(
                job,
                Job.Status.FAILED,
                "Storage error while running the job; see the log.",
                log=f"Runner I/O error: {exc}",
            )
    except Exception as exc:
        logger.exception("job %s: runner failure", job.pk)
        conclude(
            job,
            Job.Status.FAILED,
            "Internal error while running the job; see the log.",
            log=f"Runner error: {type(exc).__name__}: {exc}",
        )
    if outcome is not None:
        _finish_from_outcome(job, outcome, stderr_tail)


def _failure(job: Job, outcome: ChildOutcome, stderr_tail: str) -> str | None:
    """The user-facing reason the child failed, or None when it succeeded."""
    if outcome.error is not None:
        message = str(outcome.error.get("message", "unknown error"))
        if outcome.error.get("kind") == "backend":
            job.append_log(f"Failed: {message}")
            return message
        job.append_log(f"Internal error: {message}")
        for line in str(outcome.error.get("traceback", "")).splitlines()[-15:]:
            job.append_log(line)
        return "Internal error in the quantization backend; the log has the details."
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
        limit = _limit_hit(outcome, stderr_tail)
        if limit:
            return limit
        return (
            f"The backend process crashed (exit code {code}{signame}); a damaged model "
            "file or too little memory are the usual causes. See the log."
        )
    return None


def _limit_hit(outcome: ChildOutcome, stderr_tail: str) -> str | None:
    """A readable reason when the child died at one of its resource limits."""
    from quantjobs.limits import limit_failure

    return limit_failure(outcome.returncode, stderr_tail, outcome.limits)


def _finish_from_outcome(job: Job, outcome: ChildOutcome, stderr_tail: str) -> None:
    reason = _failure(job, outcome, stderr_tail)
    if reason is None:
        if job.search:
            # Answered either way: a format within the bar, or "none meets it".
            from quantjobs.search import search_conclude

            search_conclude(job=job)
        if conclude(job, Job.Status.SUCCEEDED):
            job.append_log("Succeeded.")
        return
    stored = [str(r.get("format")) for r in outcome.results]
    if outcome.error is not None:  # the child names the format it was making
        failed = str(outcome.error.get("format") or "")
    else:  # a crash: the first format it had not finished
        failed = next((f for f in job.formats if f not in stored), "") if stored else ""
    format_errors = {failed: reason} if failed else {}
    if job.search:
        from quantjobs.search import search_conclude

        search_conclude(
            job=job, stopped_by=f"{failed or 'a candidate'} failed: {reason}"
        )
    if stored:
        left = [f for f in job.formats if f not in stored and f != failed]
        message = (
            f"{failed or 'A format'} failed: {reason} "
            f"{', '.join(stored)} succeeded and "
            f"{'stays' if len(stored) == 1 else 'stay'} downloadable"
            + (f"; {', '.join(left)} did not run." if left else ".")
        )
        conclude(
            job,
            Job.Status.PARTIAL,
            message,
            log=f"Partly succeeded: kept {', '.join(stored)}.",
            format_errors=format_errors,
        )
        return
    conclude(job, Job.Status.FAILED, reason, format_errors=format_errors)
