"""Celery tasks: thin wrappers that pass ids to services.

There is no periodic task: every worker reaps stale jobs from its heartbeat thread
(``quantjobs/worker.py`` → ``services.jobs_reap_stale``), so no beat process is needed.
"""

from __future__ import annotations

from celery import shared_task

from quantjobs import services


@shared_task(name="quantjobs.run_job", acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    """Claim and run one job; a redelivered or cancelled job is skipped."""
    from celery import current_task

    services.job_execute(
        job_id=job_id, worker=current_task.request.hostname or "worker"
    )


@shared_task(name="quantjobs.check_upload", acks_late=True, ignore_result=True)
def check_upload(upload_id: str) -> None:
    """Check an uploaded model off the web request: ready, or refused with a reason."""
    from quantjobs.uploads import model_upload_check

    model_upload_check(upload_id=upload_id)
