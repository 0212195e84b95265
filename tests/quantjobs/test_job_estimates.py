"""The job-time estimate counts calibration tokens (importance matrix) and a search's
candidates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

PER_TOKEN_S = 200 / 5120


def _finished(user: Any, formats: list[str], seconds: float, **extra: Any) -> Any:
    from quantjobs.models import Job

    end = timezone.now() - timedelta(hours=1)
    return Job.objects.create(
        user=user,
        method="gguf",
        formats=formats,
        source_kind="sample",
        source_ref="",
        status="SUCCEEDED",
        started_at=end - timedelta(seconds=seconds),
        finished_at=end,
        **extra,
    )


@pytest.fixture
def history(user: Any) -> None:
    """One IQ4_XS job of 300 s, 200 s of which its importance matrix took (5,120
    tokens): 100 s per format besides calibration, 200/5120 s per token."""
    from quantjobs.models import JobResult

    past = _finished(user, ["gguf-IQ4_XS"], 300)
    JobResult.objects.create(
        job=past,
        format="gguf-IQ4_XS",
        metrics={"metadata": {"imatrix": {"tokens": 5120, "seconds": 200.0}}},
    )


def _queued(user: Any, formats: list[str], **extra: Any) -> Any:
    from quantjobs.models import Job

    return Job.objects.create(
        user=user, method="gguf", formats=formats, source_kind="sample",
        source_ref="", **extra,
    )  # fmt: skip


def test_a_type_without_an_importance_matrix_costs_no_calibration_time(
    user: Any, history: None
) -> None:
    from quantjobs.estimates import job_queue_outlook

    outlook = job_queue_outlook(job=_queued(user, ["gguf-Q8_0"]))
    assert outlook.estimate_s == pytest.approx(100)
    assert outlook.calibration_tokens == 0


def test_the_importance_matrix_time_grows_with_the_calibration_tokens(
    user: Any, history: None, tmp_path: Path
) -> None:
    from quantjobs.estimates import job_queue_outlook

    small = tmp_path / "small.txt"
    small.write_text("x" * 4096)  # 1,024 tokens at 4 characters a token: 2 chunks
    large = tmp_path / "large.txt"
    large.write_text("x" * 4096 * 4)  # 8 chunks
    est = {}
    for name, path in (("small", small), ("large", large)):
        job = _queued(
            user, ["gguf-IQ4_XS"], options={"calibration_text_path": str(path)}
        )
        outlook = job_queue_outlook(job=job)
        est[name] = outlook.estimate_s
        assert outlook.calibration_tokens == (1024 if name == "small" else 4096)
    assert est["small"] == pytest.approx(100 + PER_TOKEN_S * 1024)
    assert est["large"] == pytest.approx(100 + PER_TOKEN_S * 4096)
    capped = _queued(
        user,
        ["gguf-IQ4_XS"],
        options={"calibration_text_path": str(large), "imatrix_chunks": 1},
    )
    assert job_queue_outlook(job=capped).estimate_s == pytest.approx(
        100 + PER_TOKEN_S * 512
    )


def test_imatrix_on_counts_one_matrix_shared_by_the_jobs_formats(
    user: Any, history: None, tmp_path: Path
) -> None:
    from quantjobs.estimates import job_calibration_tokens

    text = tmp_path / "t.txt"
    text.write_text("x" * 4096)
    job = _queued(
        user,
        ["gguf-Q8_0", "gguf-Q4_K_M"],
        options={"calibration_text_path": str(text), "imatrix": "on"},
    )
    assert job_calibration_tokens(job=job) == (1, 1024)
    plain = _queued(user, ["gguf-Q8_0", "gguf-Q4_K_M"])
    assert job_calibration_tokens(job=plain) == (0, 0)


def test_a_search_is_estimated_for_all_its_candidates_as_an_upper_bound(
    user: Any, history: None
) -> None:
    from quantjobs.estimates import job_queue_outlook

    search = {"metric": "kl_divergence", "max": 0.05, "candidates": []}
    job = _queued(user, ["gguf-Q4_K_M", "gguf-Q6_K", "gguf-Q8_0"], search=search)
    outlook = job_queue_outlook(job=job)
    assert outlook.estimate_s == pytest.approx(300)
    assert outlook.upper_bound


def test_a_reused_matrix_is_not_taken_off_the_past_jobs_time_twice(
    user: Any,
) -> None:
    from quantjobs.estimates import job_duration_estimate_s
    from quantjobs.models import JobResult

    past = _finished(user, ["gguf-IQ4_XS", "gguf-IQ3_XXS"], 300)
    imatrix = {"tokens": 5120, "seconds": 100.0}
    JobResult.objects.create(
        job=past, format="gguf-IQ4_XS", metrics={"metadata": {"imatrix": imatrix}}
    )
    JobResult.objects.create(
        job=past,
        format="gguf-IQ3_XXS",
        metrics={"metadata": {"imatrix": {**imatrix, "reused": True}}},
    )
    # 300 s - 100 s of one matrix, over 2 formats.
    assert job_duration_estimate_s(method="gguf", formats_count=1) == pytest.approx(100)


def test_a_past_search_that_stopped_early_counts_the_formats_it_ran(
    user: Any,
) -> None:
    from quantjobs.estimates import job_duration_estimate_s
    from quantjobs.models import JobResult

    past = _finished(
        user,
        ["gguf-Q4_K_M", "gguf-Q6_K", "gguf-Q8_0"],
        120,
        search={"metric": "kl_divergence", "max": 0.05},
    )
    for fmt in ("gguf-Q4_K_M", "gguf-Q6_K"):
        JobResult.objects.create(job=past, format=fmt, metrics={})
    assert job_duration_estimate_s(method="gguf", formats_count=1) == pytest.approx(60)
