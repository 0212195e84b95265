"""One place decides a job's fate: the runner, over a real child process and Redis.

The runner runs here in the test process (what a worker's pool process does), with
the real child process and the self-test backend; the reaper runs against a real
Redis broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import reliability


def _running_job(user: Any, formats: list[str], **options: Any) -> Any:
    from quantjobs.models import Job

    job = Job.objects.create(
        user=user,
        method=Job.Method.SELFTEST,
        formats=formats,
        source_kind=Job.SourceKind.SAMPLE,
        source_ref="smollm2-135m-instruct-q4_1",
        options={"steps": 1, "step_s": 0, **options},
    )
    assert job.start(worker="test@here")
    return job


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


def test_a_later_format_failing_ends_partial_with_the_earlier_format_kept(
    user: Any, clean_media: Path
) -> None:
    from django.conf import settings

    from quantjobs import runner
    from quantjobs.artifacts import artifact_abspath, storage_used_bytes
    from quantjobs.models import Artifact, Job

    job = _running_job(user, ["selftest-a", "selftest-b"], fail_format="selftest-b")
    runner.execute(job)
    job.refresh_from_db()

    assert job.status == Job.Status.PARTIAL, job.error
    assert job.get_status_display() == "Partly succeeded"
    assert "selftest-b failed" in job.error and "selftest-a succeeded" in job.error
    assert job.format_errors == {
        "selftest-b": "selftest: selftest-b was asked to fail."
    }
    assert [(o["format"], o["status"]) for o in job.format_outcomes] == [
        ("selftest-a", "succeeded"),
        ("selftest-b", "failed"),
    ]
    [artifact] = Artifact.objects.filter(job=job)
    assert artifact.format == "selftest-a"
    assert artifact_abspath(artifact).is_file()
    # What is downloadable is what is counted, and nothing else is on disk.
    assert storage_used_bytes(user_id=user.pk) == artifact.size_bytes
    assert _files(Path(settings.QUANTPLAN_ARTIFACT_ROOT)) == {
        str(artifact_abspath(artifact))
    }
    reliability.record("Job outcomes", "later format failed: status", "PARTIAL")


def test_the_api_and_the_job_page_show_each_formats_outcome(
    user: Any, api: Any, client: Any, clean_media: Path
) -> None:
    from quantjobs import runner

    job = _running_job(user, ["selftest-a", "selftest-b"], fail_format="selftest-b")
    runner.execute(job)

    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "PARTIAL"
    assert body["format_outcomes"] == [
        {"format": "selftest-a", "status": "succeeded", "error": ""},
        {
            "format": "selftest-b",
            "status": "failed",
            "error": "selftest: selftest-b was asked to fail.",
        },
    ]
    assert [r["format"] for r in body["results"]] == ["selftest-a"]

    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Partly succeeded" in page
    assert 'data-format="selftest-b" data-outcome="failed"' in page
    assert 'data-format="selftest-a" data-outcome="succeeded"' in page


def test_a_first_format_failing_fails_the_job_and_names_the_format(
    user: Any, clean_media: Path
) -> None:
    from quantjobs import runner
    from quantjobs.models import Artifact, Job

    job = _running_job(user, ["selftest-a", "selftest-b"], fail_format="selftest-a")
    runner.execute(job)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "selftest: selftest-a was asked to fail."
    assert [o["status"] for o in job.format_outcomes] == ["failed", "not run"]
    assert not Artifact.objects.filter(job=job).exists()


def test_a_retry_replaces_what_the_lost_attempt_published(
    user: Any, clean_media: Path
) -> None:
    from django.conf import settings

    from quantjobs import runner
    from quantjobs.artifacts import artifact_abspath
    from quantjobs.models import Artifact, Job

    job = _running_job(user, ["selftest-a", "selftest-b"])
    runner.execute(job)
    first = {a.format: artifact_abspath(a) for a in Artifact.objects.filter(job=job)}
    assert set(first) == {"selftest-a", "selftest-b"}
    # As if its worker died right after publishing: back to RUNNING, then lost.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, finished_at=None)
    job.refresh_from_db()
    runner.settle_lost(job)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert not Artifact.objects.filter(job=job).exists(), "the lost attempt is gone"
    assert not any(path.exists() for path in first.values())

    assert job.start(worker="test@here")
    runner.execute(job)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2
    artifacts = list(Artifact.objects.filter(job=job))
    assert sorted(a.format for a in artifacts) == ["selftest-a", "selftest-b"]
    assert _files(Path(settings.QUANTPLAN_ARTIFACT_ROOT)) == {
        str(artifact_abspath(a)) for a in artifacts
    }
    reliability.record("Job outcomes", "artifacts listed per format after a retry", 1)


def test_a_lost_job_that_ran_past_its_time_limit_ends_timed_out(
    user: Any, clean_media: Path, settings: Any
) -> None:
    from datetime import timedelta

    from quantjobs import runner
    from quantjobs.models import Job

    settings.CELERY_TASK_TIME_LIMIT = 60
    job = _running_job(user, ["selftest"])
    # The hard time limit killed the worker's process 60 s after it started.
    Job.objects.filter(pk=job.pk).update(
        started_at=job.started_at - timedelta(seconds=61)
    )
    job.refresh_from_db()
    runner.settle_lost(job)
    job.refresh_from_db()
    assert job.status == Job.Status.TIMED_OUT
    assert "time limit (60 s)" in job.error


def test_the_memory_limit_fails_the_job_with_a_clear_reason(
    user: Any, clean_media: Path, settings: Any
) -> None:
    from quantjobs import runner
    from quantjobs.models import Job

    settings.QUANTPLAN_JOB_MEMORY_FLOOR_BYTES = 1024**3
    job = _running_job(user, ["selftest"], allocate_bytes=3 * 1024**3)
    runner.execute(job)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "memory limit (1.0 GiB" in job.error, job.error
    reliability.record("Job limits", "memory limit hit: job FAILED with reason", True)


def test_the_cpu_time_limit_fails_the_job_with_a_clear_reason(
    user: Any, clean_media: Path, settings: Any
) -> None:
    from quantjobs import runner
    from quantjobs.models import Job

    settings.QUANTPLAN_JOB_CPU_FLOOR_S = 2
    job = _running_job(user, ["selftest"], spin_s=30)
    runner.execute(job)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "CPU-time limit (2 s of CPU)" in job.error, job.error
    assert job.duration_s is not None and job.duration_s < 25
    reliability.record("Job limits", "CPU-time limit hit: job FAILED with reason", True)


def test_limits_are_sized_from_the_projection_with_a_floor(
    user: Any, settings: Any
) -> None:
    from quantjobs.limits import job_limits
    from quantjobs.models import Job
    from quantjobs.projections import projection_for

    settings.QUANTPLAN_JOB_MEMORY_FLOOR_BYTES = 1
    settings.QUANTPLAN_JOB_CPU_FLOOR_S = 1
    job = Job(
        user=user,
        method=Job.Method.GGUF,
        formats=["gguf-Q8_0"],
        model_id="llama-3-8b",
        options={},
    )
    memory = projection_for(job, "gguf-Q8_0")["memory_bytes"]
    reference = projection_for(job, "gguf-F16")["memory_bytes"]
    limits = job_limits(job)
    assert limits["memory_bytes"] == int((memory + reference) * 2.0)
    assert limits["cpu_s"] > 3600
    # A torch format has no memory projection; its file size stands in, so an
    # 8B AWQ job is still sized above its 16-bit reference, not at the floor.
    awq = Job(
        user=user,
        method=Job.Method.AWQ,
        formats=["awq-4bit-g128"],
        model_id="llama-3-8b",
        options={},
    )
    awq_size = projection_for(awq, "awq-4bit-g128")["artifact_bytes"]
    assert job_limits(awq)["memory_bytes"] == int((awq_size + reference) * 2.0)
    settings.QUANTPLAN_JOB_MEMORY_FLOOR_BYTES = 10**15
    assert job_limits(job)["memory_bytes"] == 10**15


@pytest.mark.django_db(transaction=True)
def test_a_queued_job_whose_message_was_lost_is_resent_then_failed_freeing_its_slot(
    api: Any, redis_url: str, settings: Any
) -> None:
    import redis

    from quantjobs.models import Job
    from quantjobs.services import jobs_reap_stale

    settings.QUANTPLAN_MAX_ACTIVE_JOBS = 1
    settings.QUANTPLAN_RESEND_AFTER_S = 0
    settings.QUANTPLAN_MAX_SENDS = 2
    broker = redis.Redis.from_url(redis_url)
    broker.delete("cpu")
    created = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    )
    assert created.status_code == 201
    job = Job.objects.get(pk=created.json()["id"])
    assert job.sends == 1 and job.celery_task_id
    assert job.celery_task_id.encode() in b"".join(broker.lrange("cpu", 0, -1))

    jobs_reap_stale()  # the message is there: nothing to do
    job.refresh_from_db()
    assert job.sends == 1 and job.status == Job.Status.QUEUED

    broker.delete("cpu")  # the broker lost it
    jobs_reap_stale()
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.sends == 2
    assert job.celery_task_id.encode() in b"".join(broker.lrange("cpu", 0, -1))
    busy = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    )
    assert busy.status_code == 429

    broker.delete("cpu")  # lost again, and no resends are left
    jobs_reap_stale()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "lost this job's message 2 times" in job.error
    freed = api.post(
        "/api/v1/jobs/", {"method": "selftest", "formats": ["selftest"]}, format="json"
    )
    assert freed.status_code == 201, "the failed job no longer holds a slot"
    broker.delete("cpu")
    reliability.record("Job outcomes", "lost queue message: resent, then FAILED", True)


def test_cancelling_a_queued_job_goes_through_the_runner_and_it_never_starts(
    user: Any,
) -> None:
    from quantjobs.models import Job
    from quantjobs.services import job_cancel

    job = Job.objects.create(
        user=user,
        method=Job.Method.SELFTEST,
        formats=["selftest"],
        source_kind=Job.SourceKind.SAMPLE,
        source_ref="smollm2-135m-instruct-q4_1",
    )
    job_cancel(job=job)
    assert job.status == Job.Status.CANCELLED
    assert job.error == "Cancelled by the user."
    assert not job.start(worker="late@here")


@pytest.mark.django_db(transaction=True)
def test_the_quantize_command_creates_its_job_through_the_same_service(
    user: Any, redis_url: str, tmp_path: Path, clean_media: Path
) -> None:
    import io

    from django.conf import settings
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from quantjobs.models import Job

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01\x02" * 2000)
    with pytest.raises(CommandError, match="bad.txt"):
        call_command(
            "quantize", "--method", "selftest", "--type", "selftest", "--eval", str(bad)
        )
    assert not Job.objects.exists()
    assert not _files(Path(settings.QUANTPLAN_UPLOAD_ROOT))

    text = tmp_path / "eval.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 300)
    call_command(
        "quantize",
        "--method",
        "selftest",
        "--type",
        "selftest",
        "--eval",
        str(text),
        "--json",
        stdout=io.StringIO(),
    )
    job = Job.objects.get()
    assert job.eval_text_name == "eval.txt"
    assert Path(job.eval_text_path).read_text() == text.read_text()
    assert job.sends == 1, "sent to the broker once the job was stored"
