"""``celery worker`` with timestamps: where a job's time goes, for bench/product_overhead.py.

Run as ``python bench/_worker_probe.py -A config worker ...`` with
``QUANTPLAN_BENCH_PROBE=/path/events.jsonl``. It wraps (does not change) the
runner's steps: the task entry, the child process, every event the child
reports, artifact publishing and the final status write, appending one JSON
line per step with a wall-clock timestamp. The wrappers cost microseconds per
call; the job runs exactly as under ``celery -A config worker``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBE = Path(os.environ["QUANTPLAN_BENCH_PROBE"])


def record(step: str, **fields: Any) -> None:
    """Append one timestamped step to the probe file."""
    line = json.dumps({"t": time.time(), "step": step, "pid": os.getpid(), **fields})
    with PROBE.open("a") as fh:
        fh.write(line + "\n")


def _wrap(owner: Any, name: str, before: str, after: str | None = None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        record(before)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                record(after)

    setattr(owner, name, wrapper)


def install() -> None:
    """Wrap the runner's steps."""
    import django

    django.setup()
    from quantjobs import runner, services
    from quantjobs.models import Job

    _wrap(services, "job_execute", "task_start", "task_end")
    _wrap(runner, "run_child", "child_spawn", "child_reaped")
    _wrap(runner, "publish_result", "publish_start", "publish_end")
    _wrap(Job, "finish", "finish_start", "finish_end")
    original_handle = runner._handle_event

    def handle(job: Any, event: dict[str, Any], *args: Any) -> Any:
        kind = event.get("event")
        if kind:
            text = str(
                event.get("stage") or event.get("line") or event.get("format") or ""
            )
            record(f"event:{kind}", text=text[:120])
        return original_handle(job, event, *args)

    runner._handle_event = handle


if __name__ == "__main__":
    install()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(main())
