"""The calibration ledger: every pair recorded; enough runs refit the next projection."""

from __future__ import annotations

from typing import Any

import pytest

from quantjobs.calibration import (
    calibration_record_result,
    calibration_summary_for_user,
    device_key,
)
from quantjobs.models import Artifact, CalibrationRecord, Job, JobResult
from quantjobs.projections import device_projection_for

pytestmark = pytest.mark.django_db

AVX512 = "CPU : AVX2 = 1 | AVX512 = 1 |"
SERVING = {
    "threads": 2,
    "context_tokens": 512,
    "system_info": AVX512,
    "cpu_model": "AMD EPYC",
    "prompt": {"tokens": 512},
    "generation": {"tokens": 128},
}
FINGERPRINT = {"memory_bandwidth_bytes_per_s": 30e9}


def _job(user: Any) -> Job:
    return Job.objects.create(
        user=user,
        method="gguf",
        formats=["gguf-Q4_K_M"],
        source_kind="sample",
        model_id="smollm2-135m-instruct",
        worker="w1",
        status="SUCCEEDED",
    )


def _measured(user: Any, generation_tokens_per_s: float) -> JobResult:
    """A finished Q4_K_M result with this generation speed, recorded in the ledger."""
    job = _job(user)
    projection = device_projection_for(job, "gguf-Q4_K_M", FINGERPRINT, SERVING)
    artifact = Artifact.objects.create(
        user=user, job=job, format="gguf-Q4_K_M", filename="m.gguf", path="x",
        size_bytes=105_000_000, sha256="ab" * 32,
    )  # fmt: skip
    result = JobResult.objects.create(
        job=job,
        format="gguf-Q4_K_M",
        artifact=artifact,
        projection=projection,
        metrics={
            "perplexity": 21.0,
            "base_perplexity": 20.0,
            "kl_divergence": 0.02,
            "peak_memory_bytes": 200 * 2**20,
            "prompt_tokens_per_s": 400.0,
            "generation_tokens_per_s": generation_tokens_per_s,
        },
    )
    calibration_record_result(result=result)
    return result


def test_every_quantity_of_a_result_is_recorded_with_its_device_and_model(
    user: Any,
) -> None:
    result = _measured(user, 80.0)
    records = {r.quantity: r for r in CalibrationRecord.objects.filter(result=result)}
    assert set(records) >= {
        "artifact_bytes", "memory_bytes", "prompt_tokens_per_s",
        "generation_tokens_per_s", "perplexity_change_pct", "kl_divergence",
    }  # fmt: skip
    tg = records["generation_tokens_per_s"]
    assert tg.measured == 80.0 and tg.projected and tg.baseline == tg.projected
    assert tg.projection_basis.startswith("estimated")
    assert tg.device_key == "AMD EPYC | 2 threads | avx2/avx512"
    assert tg.model_family and tg.parameter_count and tg.parameter_count > 1e8
    assert tg.format_family == "gguf" and tg.engine == "llama.cpp on CPU"
    assert records["perplexity_change_pct"].measured == pytest.approx(5.0)
    assert records["perplexity_change_pct"].projection_basis == "published"


def test_enough_measurements_change_the_next_projection_and_its_label(
    user: Any,
) -> None:
    job = _job(user)
    before = device_projection_for(job, "gguf-Q4_K_M", FINGERPRINT, SERVING)
    assert before["speed_basis"].startswith("estimated")
    roofline = before["roofline_generation_tokens_per_s"]
    for _ in range(2):
        _measured(user, 0.5 * roofline)
    two = device_projection_for(job, "gguf-Q4_K_M", FINGERPRINT, SERVING)
    assert two["generation_tokens_per_s"] == pytest.approx(roofline)  # not yet
    _measured(user, 0.5 * roofline)
    after = device_projection_for(job, "gguf-Q4_K_M", FINGERPRINT, SERVING)
    assert after["generation_tokens_per_s"] == pytest.approx(0.5 * roofline)
    assert after["speed_basis"] == "calibrated from 3 runs"
    assert after["roofline_generation_tokens_per_s"] == pytest.approx(roofline)
    # Another device is not calibrated by this one's runs.
    other = {**SERVING, "cpu_model": "Intel Xeon"}
    assert device_projection_for(job, "gguf-Q4_K_M", FINGERPRINT, other)[
        "speed_basis"
    ].startswith("estimated")


def test_the_summary_gives_n_median_p90_and_worst_per_quantity(user: Any) -> None:
    for speed in (80.0, 90.0, 100.0):
        _measured(user, speed)
    summary = {s["quantity"]: s for s in calibration_summary_for_user(user=user)}
    tg = summary["generation_tokens_per_s"]
    assert tg["n"] == 3 and tg["measurements"] == 3
    assert tg["p90_abs_pct"] >= abs(tg["median_pct"])
    assert len(tg["points"]) == 3
    assert summary["kl_divergence"]["n"] == 0  # measured, never projected
    assert summary["kl_divergence"]["measurements"] == 3


def test_a_device_key_names_cpu_threads_and_build() -> None:
    assert device_key({}) == ""
    assert device_key({"cpu_model": "X", "cores_used": 4, "system_info": ""}) == (
        "X | 4 threads | no AVX2"
    )


def test_the_measurements_api_and_page_show_the_errors(
    user: Any, api: Any, client: Any
) -> None:
    for speed in (80.0, 90.0, 100.0):
        _measured(user, speed)
    body = api.get("/api/v1/measurements/").json()
    summary = {s["quantity"]: s for s in body["summary"]}
    assert summary["generation_tokens_per_s"]["n"] == 3
    assert len(body["records"]) >= 18
    assert {r["projection_basis"] for r in body["records"]} >= {"published"}

    client.force_login(user)
    html = client.get("/measurements/").content.decode()
    table = html.split('id="measurement-errors"')[1].split("</table>")[0]
    assert 'data-quantity="generation_tokens_per_s"' in table
    assert "Generation tokens/s" in table
    assert html.count("<circle") >= 3 * 4  # size, memory, pp, tg charts
    assert "calibrated from" in html or "estimated" in html


def test_another_users_ledger_is_not_shown(user: Any, other_api: Any) -> None:
    _measured(user, 80.0)
    body = other_api.get("/api/v1/measurements/").json()
    assert body["records"] == []
    assert all(s["measurements"] == 0 for s in body["summary"])
