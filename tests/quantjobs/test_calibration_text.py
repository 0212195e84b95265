"""The user's calibration text: checked on upload, passed to the job child."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from quantjobs.backends.child import calibration_text
from quantjobs.evaltext import EvalTextError, parse_calibration_text

PROSE = (
    "Our support team answers questions about invoices and refunds. " * 60
).encode()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("calib.txt", b"", "is empty"),
        ("calib.txt", b"\x00\x01\x02" * 1000, "binary file"),
        ("calib.txt", b"too short", "calibration needs at least 2,000"),
        ("calib.jsonl", PROSE, "must be a .txt file"),
        ("calib.txt", b"\xff\xfe" + PROSE, "not valid UTF-8"),
    ],
)
def test_bad_calibration_text_gets_a_reason(
    name: str, data: bytes, reason: str
) -> None:
    with pytest.raises(EvalTextError, match=reason):
        parse_calibration_text(data, name)


def test_the_child_uses_the_users_text_and_says_so(tmp_path: Any) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(PROSE)
    text, source = calibration_text(
        {
            "options": {
                "calibration_text_path": str(path),
                "calibration_text_name": "mine.txt",
            }
        }
    )
    assert text.startswith("Our support team") and source == "mine.txt"
    default, where = calibration_text({"options": {}})
    assert where == "built-in" and default != text


@pytest.fixture
def logged_in_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_api_refuses_a_bad_calibration_file_on_that_field(
    api: Any, redis_url: str
) -> None:
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": "gguf-Q4_K_M",
            "calibration_file": SimpleUploadedFile("c.txt", b""),
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert "is empty" in response.json()["calibration_file"][0]


@pytest.mark.django_db
def test_the_api_keeps_a_good_calibration_file_and_the_imatrix_choice(
    api: Any, redis_url: str
) -> None:
    from quantjobs.models import Job

    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": "gguf-Q4_K_M",
            "imatrix": "on",
            "calibration_file": SimpleUploadedFile("support.txt", PROSE),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    options = Job.objects.get(pk=response.json()["id"]).options
    assert options["imatrix"] == "on"
    assert options["calibration_text_name"] == "support.txt"
    text, source = calibration_text({"options": options})
    assert source == "support.txt" and "invoices" in text


@pytest.mark.django_db
def test_the_result_says_which_text_calibrated_it_and_how_many_tokens(
    api: Any, user: Any
) -> None:
    from quantjobs.models import Job, JobResult

    job = Job.objects.create(
        user=user, method="gguf", formats=["gguf-IQ4_XS"], status="SUCCEEDED"
    )
    JobResult.objects.create(
        job=job,
        format="gguf-IQ4_XS",
        metrics={
            "metadata": {
                "calibration_source": "support.txt",
                "imatrix": {"tokens": 2048, "chunks": 4, "source": "request"},
            }
        },
    )
    (row,) = api.get(f"/api/v1/jobs/{job.pk}/").json()["results"]
    assert row["calibration"] == {
        "source": "support.txt",
        "importance_matrix": True,
        "imatrix_tokens": 2048,
        "imatrix_chunks": 4,
        "imatrix_seconds": None,
        "calibration_samples": None,
        "calibration_seq_len": None,
        "tokens_used": 2048,
        "tokens_used_how": "importance matrix, 4 chunks",
    }


@pytest.mark.django_db
def test_awq_and_gptq_results_report_the_calibration_tokens_really_used(
    api: Any, user: Any, logged_in_client: Any
) -> None:
    from quantjobs.models import Job, JobResult

    job = Job.objects.create(
        user=user, method="gptq", formats=["gptq-4bit-g64"], status="SUCCEEDED"
    )
    JobResult.objects.create(
        job=job,
        format="gptq-4bit-g64",
        metrics={
            "metadata": {
                "calibration_source": "built-in",
                "calibration_samples": 16,
                "calibration_seq_len": 256,
            }
        },
    )
    (row,) = api.get(f"/api/v1/jobs/{job.pk}/").json()["results"]
    assert row["calibration"]["tokens_used"] == 4096
    assert row["calibration"]["tokens_used_how"] == "16 samples x 256 tokens"
    html = logged_in_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-tokens="4096"' in html and "4096 tokens really used" in html


@pytest.mark.django_db
def test_a_type_without_an_importance_matrix_says_no_calibration_was_used(
    api: Any, user: Any
) -> None:
    from quantjobs.models import Job, JobResult

    job = Job.objects.create(
        user=user, method="gguf", formats=["gguf-Q8_0"], status="SUCCEEDED"
    )
    JobResult.objects.create(
        job=job,
        format="gguf-Q8_0",
        metrics={"metadata": {"calibration_source": "built-in"}},
    )
    (row,) = api.get(f"/api/v1/jobs/{job.pk}/").json()["results"]
    assert row["calibration"]["tokens_used"] is None
    assert row["calibration"]["importance_matrix"] is False
