"""The Celery app, configured from Django settings (keys prefixed CELERY_)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("quantplan")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Two queues: cpu workers run GGUF and baselines; gpu workers run AWQ and GPTQ.
app.conf.task_queues = (Queue("cpu"), Queue("gpu"))
app.conf.task_default_queue = "cpu"
app.autodiscover_tasks()


@worker_ready.connect
def _announce_worker(sender: object = None, **_: object) -> None:
    """Start the heartbeat/reaper thread once the worker consumes its queues."""
    from quantjobs.worker import start_heartbeat

    # The sender is the worker's Consumer.
    hostname = getattr(sender, "hostname", None) or "worker"
    queues: list[str] = []
    task_consumer = getattr(sender, "task_consumer", None)
    if task_consumer is not None:
        queues = sorted(q.name for q in task_consumer.queues)
    start_heartbeat(str(hostname), queues)


@worker_shutting_down.connect
def _stop_worker_heartbeat(sender: object = None, **_: object) -> None:
    """On SIGTERM, running jobs stop and go back to the queue (once) instead of
    holding the shutdown for hours or being lost with the worker."""
    from quantjobs.services import jobs_interrupt_for_worker
    from quantjobs.worker import stop_heartbeat

    stop_heartbeat()
    try:
        jobs_interrupt_for_worker(worker=str(sender))
    except Exception:  # shutting down must not fail
        pass
