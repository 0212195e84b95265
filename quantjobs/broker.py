"""Talking to the Celery broker: enqueue by id, and tell the user when it is down."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

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


def workers_online(timeout_s: float = 1.0) -> dict[str, list[str]]:
    """Map of worker hostname to the queues it consumes, from a broadcast ping."""
    from config.celery import app

    try:
        replies: dict[str, Any] | None = app.control.inspect(
            timeout=timeout_s
        ).active_queues()
    except Exception:
        logger.warning("worker inspection failed", exc_info=True)
        return {}
    return {
        host: sorted(q["name"] for q in queues)
        for host, queues in (replies or {}).items()
    }
