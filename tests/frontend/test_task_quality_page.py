"""The job page and the API state task quality with numbers, and serve every answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quantjobs.backends.task_quality import QaAnswer, summarise
from tests.frontend.test_pages import html_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def _job_with_answers(user: Any) -> Any:
    from quantjobs.models import Artifact, Job, JobResult

    job = Job.objects.create(
        user=user, method="gguf", formats=["gguf-Q4_K_M"], source_kind="sample",
        status="SUCCEEDED", progress=1.0,
    )  # fmt: skip
    expected = ["a"] * 28 + ["b", "c"]
    reference = [QaAnswer(i, f"q{i}", e, e) for i, e in enumerate(expected)]
    model = [
        QaAnswer(i, f"q{i}", e, e if i != 29 else "wrong")
        for i, e in enumerate(expected)
    ]
    artifact = Artifact.objects.create(
        user=user, job=job, format="gguf-Q4_K_M", filename="m.gguf", path="x/m",
        size_bytes=1000, sha256="ab" * 32,
    )  # fmt: skip
    task = summarise(reference, model)
    task["chat_template"] = True
    JobResult.objects.create(
        job=job,
        format="gguf-Q4_K_M",
        artifact=artifact,
        metrics={"perplexity": 20.5, "base_perplexity": 20.0, "task": task,
                 "exact_match": task["exact_match"]},
    )  # fmt: skip
    return job


def test_the_page_states_the_score_against_full_precision_with_numbers(
    logged_in: Any, user: Any
) -> None:
    job = _job_with_answers(user)
    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    section = html.split('id="task-quality"')[1].split("</section>")[0]
    assert (
        "gguf-Q4_K_M scores 96.7% on your prompt/answer set (30 questions, "
        "normalised match), within 3.3% of the full-precision version (100.0%)"
    ) in section
    assert "drop of 3.3 points, 95% confidence interval" in section
    assert "in the model's chat template" in section
    assert f"/jobs/{job.pk}/results/gguf-Q4_K_M/answers.jsonl" in section


def test_the_api_has_the_same_numbers_and_the_answers_as_jsonl(
    api: Any, user: Any
) -> None:
    job = _job_with_answers(user)
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    (row,) = body["results"]
    task = row["task_quality"]
    assert task["reference_normalised_match"] == 1.0
    assert task["normalised_match"] == pytest.approx(29 / 30)
    assert task["normalised_match_drop"]["points"] == pytest.approx(3.333, rel=1e-3)
    assert task["sentence"].startswith("gguf-Q4_K_M scores 96.7%")
    assert "rows" not in task

    download = api.get(row["answers_download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].endswith('answers-gguf-Q4_K_M.jsonl"')
    lines = [json.loads(x) for x in download.content.decode().splitlines()]
    assert len(lines) == 30
    assert lines[29]["output"] == "wrong" and lines[29]["reference_output"] == "c"
    assert lines[29]["normalised"] is False and lines[29]["reference_normalised"]


def test_another_users_answers_are_not_found(
    logged_in: Any, user: Any, other_api: Any
) -> None:
    job = _job_with_answers(user)
    url = f"/api/v1/jobs/{job.pk}/results/gguf-Q4_K_M/answers.jsonl"
    assert other_api.get(url).status_code == 404
    assert (
        logged_in.get(f"/jobs/{job.pk}/results/gguf-Q4_K_M/answers.jsonl").status_code
        == 200
    )
    assert (
        logged_in.get(f"/jobs/{job.pk}/results/gguf-Q8_0/answers.jsonl").status_code
        == 404
    )
