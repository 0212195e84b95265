"""The jobs API without a worker: validation, ownership, broker outages, quotas."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_creating_a_job_while_the_broker_is_down_is_a_503_with_a_message(
    api: Any,
) -> None:
    from quantjobs.models import Job

    response = api.post(
        "/api/v1/jobs/", {"method": "gguf", "formats": ["gguf-Q8_0"]}, format="json"
    )
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_queued_job_without_a_worker_says_what_it_waits_for(
    api: Any, redis_url: str
) -> None:
    response = api.post(
        "/api/v1/jobs/", {"method": "awq", "formats": ["awq-4bit-g64"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["queue"] == "gpu"
    assert body["status"] == "QUEUED"
    assert "No worker is consuming the gpu queue" in body["waiting_for"]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"method": "gguf", "formats": ["gguf-Q9_9"]}, "formats", "Q9_9"),
        (
            {"method": "gguf", "formats": ["awq-4bit-g64"]},
            "formats",
            "not a gguf format",
        ),
        ({"method": "nope", "formats": ["x"]}, "method", "valid choice"),
        (
            {"method": "gguf", "formats": ["gguf-Q8_0"], "bench_repetitions": 0},
            "bench_repetitions",
            "greater than or equal to 1",
        ),
        (
            {"method": "gguf", "formats": ["gguf-Q8_0"], "bench_prompt_tokens": 9000},
            "bench_prompt_tokens",
            "less than or equal to 8192",
        ),
        ({"method": "gguf", "formats": []}, "formats", ""),
        (
            {
                "method": "gguf",
                "formats": ["gguf-Q8_0"],
                "source_kind": "sample",
                "source_ref": "missing-sample",
            },
            "source_ref",
            "Unknown sample",
        ),
        (
            {
                "method": "gguf",
                "formats": ["gguf-Q8_0"],
                "source_kind": "hf",
                "source_ref": "../etc/passwd",
            },
            "source_ref",
            "",
        ),
        (
            {
                "method": "gguf",
                "formats": ["gguf-Q8_0"],
                "source_kind": "local",
                "source_ref": "/etc/passwd",
            },
            "source_ref",
            "must live under",
        ),
    ],
)
def test_bad_job_requests_are_400_naming_the_field(
    api: Any, redis_url: str, payload: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/api/v1/jobs/", payload, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert message in " ".join(errors[field])


def test_another_users_job_and_artifact_are_404(
    api: Any, other_api: Any, redis_url: str
) -> None:
    job = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    ).json()
    for path in (f"/api/v1/jobs/{job['id']}/",):
        assert other_api.get(path).status_code == 404
    assert other_api.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 404
    assert other_api.post(f"/api/v1/jobs/{job['id']}/rerun/").status_code == 404
    assert other_api.get("/api/v1/jobs/").json()["count"] == 0
    assert other_api.get("/api/v1/jobs/not-a-uuid/").status_code == 404


def test_cancelling_a_queued_job_ends_it_and_a_second_cancel_is_400(
    api: Any, redis_url: str
) -> None:
    job = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    ).json()
    first = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert first.status_code == 200
    assert first.json()["status"] == "CANCELLED"
    second = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert second.status_code == 400
    assert "already ended" in second.json()["detail"]


def test_rerun_queues_a_copy(api: Any, redis_url: str) -> None:
    job = api.post(
        "/api/v1/jobs/", {"method": "gguf", "formats": ["gguf-q4_k_m"]}, format="json"
    ).json()
    assert job["formats"] == ["gguf-Q4_K_M"]
    again = api.post(f"/api/v1/jobs/{job['id']}/rerun/")
    assert again.status_code == 201
    assert again.json()["id"] != job["id"]
    assert again.json()["formats"] == ["gguf-Q4_K_M"]


def test_active_jobs_beyond_the_quota_get_429(
    api: Any, redis_url: str, settings: Any
) -> None:
    settings.QUANTPLAN_MAX_ACTIVE_JOBS = 2
    for _ in range(2):
        ok = api.post(
            "/api/v1/jobs/",
            {"method": "selftest", "formats": ["selftest"]},
            format="json",
        )
        assert ok.status_code == 201
    response = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    )
    assert response.status_code == 429
    assert "limit is 2" in response.json()["detail"]


def test_a_bad_evaluation_file_is_a_400_on_that_field(api: Any, redis_url: str) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(
        "eval.txt", b"\x00\x01\x02" * 2000, content_type="text/plain"
    )
    response = api.post(
        "/api/v1/jobs/",
        {"method": "gguf", "formats": "gguf-Q8_0", "eval_file": upload},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert "eval_file" in response.json()


def test_speed_test_settings_reach_the_job(api: Any, redis_url: str) -> None:
    from quantjobs.models import Job

    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0"],
            "bench_prompt_tokens": 128,
            "bench_generation_tokens": 32,
            "bench_repetitions": 3,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    options = Job.objects.get(pk=response.json()["id"]).options
    assert options["bench_prompt_tokens"] == 128
    assert options["bench_generation_tokens"] == 32
    assert options["bench_repetitions"] == 3
