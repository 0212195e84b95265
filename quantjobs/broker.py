"""Talking to the Celery broker: enqueue by id, and tell the user when it is down.

Messages are sent by task name, so nothing here imports ``quantjobs.tasks`` (the
tasks call services, which call the runner, which requeues through this module).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The message broker (Redis) cannot be reached; the request can be retried later."""


BROKER_DOWN_MESSAGE = (
    "The job queue (Redis) is not reachable right now; your request was not lost "
    "if it was saved, but no work can be queued. Try again in a minute."
)


def broker_ping(timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether the broker answers a PING, with a short reason when it does not."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        client.ping()
    except Exception as exc:  # any failure means "not usable"
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


RUN_JOB_TASK = "quantjobs.run_job"
CHECK_UPLOAD_TASK = "quantjobs.check_upload"


def job_enqueue(job: Any) -> None:
    """Send the job's id to its queue once the surrounding transaction commits.

    A failed send leaves the row QUEUED with no message; the reaper sends it again.
    """
    from config.celery import app

    def send() -> None:
        try:
            result = app.send_task(
                RUN_JOB_TASK, args=[str(job.pk)], queue=job.queue, retry=False
            )
        except Exception:
            logger.warning("job %s: could not reach the broker", job.pk, exc_info=True)
            job.append_log("The job queue was unreachable; it will be sent again.")
            return
        job.mark_sent(task_id=str(result.id))

    transaction.on_commit(send)


def upload_check_enqueue(upload: Any) -> None:
    """Queue the check of an uploaded model on the cpu queue, after commit."""
    from config.celery import app

    def send() -> None:
        try:
            app.send_task(
                CHECK_UPLOAD_TASK, args=[str(upload.pk)], queue="cpu", retry=False
            )
        except Exception:
            logger.warning("upload %s: could not reach the broker", upload.pk)

    transaction.on_commit(send)


def message_pending(*, queue: str, task_id: str) -> bool | None:
    """Whether the broker still holds a message with this task id (waiting in the
    queue or delivered and not yet acknowledged); None when the broker cannot say."""
    import redis

    if not task_id:
        return False
    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5
        )
        # kombu's Redis transport: one list per queue and priority, and a hash of
        # messages delivered to a worker but not yet acknowledged.
        needle = task_id.encode()
        keys = [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)]
        for key in keys:
            for raw in client.lrange(key, 0, -1):
                if needle in raw:
                    return True
        for raw in client.hvals("unacked"):
            if needle in raw:
                return True
    except Exception:
        logger.warning("broker inspection failed", exc_info=True)
        return None
    return False
