"""A trivial job end to end through the API, a real Redis and a real worker process."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]


def _create(api: Any, **options: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/jobs/",
        {"method": "selftest", "formats": ["selftest"], **options},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_a_job_goes_queued_running_succeeded_with_visible_progress(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    from quantjobs.models import Job

    job = _create(api)
    assert job["status"] == "QUEUED"
    Job.objects.filter(pk=job["id"]).update(options={"steps": 8, "step_s": 0.5})
    start_worker("cpu")

    seen: list[tuple[str, float]] = []

    def finished() -> Any:
        body = api.get(f"/api/v1/jobs/{job['id']}/").json()
        seen.append((body["status"], body["progress"]))
        return body if body["status"] in ("SUCCEEDED", "FAILED") else None

    body = wait_for(finished, timeout_s=90, interval_s=0.1)

    assert body["status"] == "SUCCEEDED", body
    assert body["progress"] == 1.0
    running = [p for s, p in seen if s == "RUNNING"]
    assert any(0.0 < p < 1.0 for p in running), seen
    assert running == sorted(running), "progress never goes backwards"
    assert [s for s, _ in seen][0] in ("QUEUED", "RUNNING")
    row = Job.objects.get(pk=job["id"])
    assert row.started_at and row.finished_at and row.attempts == 1
    assert "self-test step 8 of 8" in row.log

    [result] = body["results"]
    download = api.get(f"/api/v1/artifacts/{result['artifact_id']}/download/")
    content = b"".join(download.streaming_content)
    assert download.status_code == 200
    assert hashlib.sha256(content).hexdigest() == result["sha256"]
    assert download["X-Checksum-SHA256"] == result["sha256"]
    assert not any((clean_media / "work").rglob("*.txt")), "work directory cleaned"


def test_a_backend_error_fails_the_job_with_its_message(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    from quantjobs.models import Artifact, Job

    job = _create(api)
    Job.objects.filter(pk=job["id"]).update(options={"fail": "The model is too small."})
    start_worker("cpu")

    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job['id']}/").json())["status"] == "FAILED"
            and b
        ),
        timeout_s=60,
    )
    assert body["error"] == "The model is too small."
    assert not Artifact.objects.filter(job_id=job["id"]).exists()


def test_cancel_stops_a_running_job_and_keeps_no_file(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    from quantjobs.models import Artifact, Job

    job = _create(api)
    Job.objects.filter(pk=job["id"]).update(options={"steps": 100, "step_s": 0.5})
    start_worker("cpu")
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{job['id']}/").json()["status"] == "RUNNING"
    )

    response = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert response.status_code == 200

    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job['id']}/").json())["status"] == "CANCELLED"
            and b
        ),
        timeout_s=30,
    )
    assert body["error"] == "Cancelled by the user."
    assert not Artifact.objects.filter(job_id=job["id"]).exists()
    assert not list((clean_media / "work").rglob("*")) or not any(
        p.is_file() for p in (clean_media / "work").rglob("*")
    )


def test_a_job_over_its_time_limit_ends_timed_out(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    from quantjobs.models import Job

    job = _create(api)
    Job.objects.filter(pk=job["id"]).update(
        options={"steps": 100, "step_s": 0.5, "timeout_s": 3}
    )
    start_worker("cpu")
    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job['id']}/").json())["status"] == "TIMED_OUT"
            and b
        ),
        timeout_s=60,
    )
    assert "time limit" in body["error"]
    assert not any(p.is_file() for p in (clean_media / "work").rglob("*"))


def test_the_workers_soft_time_limit_ends_the_job_timed_out_not_internal_error(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    from quantjobs.models import Job

    job = _create(api)
    Job.objects.filter(pk=job["id"]).update(options={"steps": 100, "step_s": 0.5})
    start_worker("cpu", QUANTPLAN_JOB_SOFT_LIMIT_S="4", QUANTPLAN_JOB_HARD_LIMIT_S="60")
    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job['id']}/").json())["status"]
            in ("TIMED_OUT", "FAILED", "SUCCEEDED")
            and b
        ),
        timeout_s=60,
    )
    assert body["status"] == "TIMED_OUT", body
    assert "time limit (4 s)" in body["error"]
    assert not any(p.is_file() for p in (clean_media / "work").rglob("*"))
