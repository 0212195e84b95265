"""Plans read the calibration ledger: a measurement changes the next plan and its
label, through the API, the CLI and the web page alike."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from planner import measurements
from planner.models import Plan
from quantjobs.calibration import calibration_record_result
from quantjobs.models import Artifact, Job, JobResult, WorkerHeartbeat
from quantjobs.projections import device_projection_for

pytestmark = pytest.mark.django_db

MODEL = "smollm2-135m-instruct"
FORMAT = "gguf-Q4_K_M"
AVX512 = "CPU : AVX2 = 1 | AVX512 = 1 |"
# What the worker announced, and what its serving process reported.
FINGERPRINT = {
    "cpu_model": "AMD EPYC",
    "cores_used": 2,
    "system_info": AVX512,
    "memory_bandwidth_bytes_per_s": 30e9,
}
SERVING = {
    "threads": 2,
    "context_tokens": 512,
    "system_info": AVX512,
    "cpu_model": "AMD EPYC",
    "prompt": {"tokens": 512},
    "generation": {"tokens": 128},
}
PLAN = {
    "model": MODEL,
    "gpu": "worker:w1",
    "engine": "llama.cpp",
    "formats": [FORMAT, "gguf-Q8_0"],
    "context": 512,
    "concurrency": 1,
    "prompt_tokens": 256,
    "output_tokens": 128,
}


@pytest.fixture
def worker(db: Any) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(
        hostname="w1", queues=["cpu"], capabilities={"fingerprint": FINGERPRINT}
    )


def _measure(user: Any, *, generation_ratio: float, perplexity: float) -> JobResult:
    """A finished job on w1, published and recorded in the ledger by the real
    service; its generation speed is ``generation_ratio`` x the roofline."""
    job = Job.objects.create(
        user=user, method="gguf", formats=[FORMAT], source_kind="hf",
        source_ref="HuggingFaceTB/SmolLM2-135M-Instruct", model_id=MODEL,
        worker="w1", status="SUCCEEDED",
    )  # fmt: skip
    projection = device_projection_for(job, FORMAT, FINGERPRINT, SERVING)
    artifact = Artifact.objects.create(
        user=user, job=job, format=FORMAT, filename="m.gguf", path="x",
        size_bytes=105_123_456, sha256="ab" * 32,
    )  # fmt: skip
    result = JobResult.objects.create(
        job=job,
        format=FORMAT,
        artifact=artifact,
        projection=projection,
        metrics={
            "perplexity": perplexity,
            "base_perplexity": 20.0,
            "kl_divergence": 0.02,
            "peak_memory_bytes": 200 * 2**20,
            "prompt_tokens_per_s": 0.8 * projection["roofline_prompt_tokens_per_s"],
            "generation_tokens_per_s": generation_ratio
            * projection["roofline_generation_tokens_per_s"],
        },
    )
    calibration_record_result(result=result)
    return result


def _row(body: dict[str, Any], fmt: str = FORMAT) -> dict[str, Any]:
    return next(r for r in body["results"] if r["format"] == fmt)


def test_quantjobs_offers_its_ledger_to_plans_through_the_registry(
    user: Any, worker: Any
) -> None:
    assert [d.plan_id for d in measurements.measuring_devices()] == ["worker:w1"]
    _measure(user, generation_ratio=0.5, perplexity=21.0)
    found = measurements.measurements_for_model(user=user, model_id=MODEL)
    assert [(m.format, m.perplexity_increase_pct) for m in found] == [(FORMAT, 5.0)]
    assert found[0].source.startswith("your job ")
    assert found[0].device == "AMD EPYC | 2 threads | avx2/avx512"
    assert measurements.measurements_for_model(user=user, model_id="llama-3-70b") == []


def test_three_runs_calibrate_the_next_api_plan_and_say_so(
    user: Any, api: Any, worker: Any
) -> None:
    before = _row(api.post("/api/v1/plans/", PLAN, format="json").json())
    assert before["sources"]["decode_tokens_per_s"] == (
        "estimated (roofline, default efficiency)"
    )
    assert before["sources"]["quality"].startswith("estimated (published: ")
    assert before["expected_quality_loss"]["kind"] == "published-estimate"
    assert before["sources"]["artifact_bytes"].startswith("estimated")

    for perplexity in (21.0, 21.2, 20.8):
        _measure(user, generation_ratio=0.5, perplexity=perplexity)
    after_body = api.post("/api/v1/plans/", PLAN, format="json").json()
    after = _row(after_body)
    assert after["sources"]["decode_tokens_per_s"] == "calibrated from 3 runs"
    assert after["sources"]["prompt_tokens_per_s"] == "calibrated from 3 runs"
    assert after["decode_tokens_per_s"] == pytest.approx(
        0.5 * before["decode_tokens_per_s"], rel=1e-6
    )
    assert after["prompt_tokens_per_s"] == pytest.approx(
        0.8 * before["prompt_tokens_per_s"], rel=1e-6
    )
    # The latest measurement of this very model and format, with its job.
    quality = after["expected_quality_loss"]
    assert quality["kind"] == "measured"
    assert quality["perplexity_increase_pct"] == pytest.approx(4.0)
    assert after["sources"]["quality"].startswith("measured (your job ")
    assert after["artifact_bytes"] == 105_123_456
    assert after["sources"]["artifact_bytes"].startswith("measured (your job ")
    # Same device, llama.cpp, one sequence at the measured context: the peak RSS.
    assert after["sources"]["total_bytes_per_gpu"].startswith("measured (your job ")
    # A format nobody measured keeps its estimates and says so.
    q8 = _row(after_body, "gguf-Q8_0")
    assert q8["sources"]["quality"].startswith("estimated (published: ")
    assert q8["sources"]["decode_tokens_per_s"] == "calibrated from 3 runs"  # family


def test_a_catalog_gpu_is_never_calibrated_by_a_workers_runs(
    user: Any, api: Any, worker: Any
) -> None:
    for _ in range(3):
        _measure(user, generation_ratio=0.5, perplexity=21.0)
    body = api.post(
        "/api/v1/plans/", {**PLAN, "gpu": "cpu-generic-ddr5"}, format="json"
    ).json()
    row = _row(body)
    assert row["sources"]["decode_tokens_per_s"].startswith("estimated")
    assert row["sources"]["total_bytes_per_gpu"].startswith("estimated")
    # Quality of this very model is measured whatever the device.
    assert row["sources"]["quality"].startswith("measured")


def test_another_users_measurements_stay_out_of_my_plan(
    other_user: Any, api: Any, worker: Any
) -> None:
    for _ in range(3):
        _measure(other_user, generation_ratio=0.5, perplexity=21.0)
    row = _row(api.post("/api/v1/plans/", PLAN, format="json").json())
    assert row["expected_quality_loss"]["kind"] == "published-estimate"
    # Speed is a fact about the machine: everyone's runs calibrate it.
    assert row["sources"]["decode_tokens_per_s"] == "calibrated from 3 runs"


def test_an_unknown_worker_is_a_400_that_names_the_known_ones(
    api: Any, worker: Any
) -> None:
    response = api.post("/api/v1/plans/", {**PLAN, "gpu": "worker:nope"}, format="json")
    assert response.status_code == 400
    assert "worker:w1" in json.dumps(response.json())


def _cli(*args: str) -> str:
    out = StringIO()
    call_command(
        "plan", "--model", MODEL, "--gpu", "worker:w1", "--engine", "llama.cpp",
        "--context", "2048", "--format", FORMAT, *args, stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_the_cli_plan_changes_with_the_ledger_and_labels_it(
    user: Any, worker: Any
) -> None:
    before = json.loads(_cli("--json"))[0]
    assert before["sources"]["decode_tokens_per_s"].startswith("estimated")
    assert "tok/s estimated (roofline, default efficiency)" in _cli()
    for _ in range(3):
        _measure(user, generation_ratio=0.5, perplexity=21.0)
    after = json.loads(_cli("--json"))[0]
    assert after["decode_tokens_per_s"] == pytest.approx(
        0.5 * before["decode_tokens_per_s"], rel=1e-6
    )
    assert after["expected_quality_loss"]["perplexity_increase_pct"] == 5.0
    table = _cli()
    assert "tok/s calibrated from 3 runs" in table
    assert "quality measured (job " in table


def test_the_web_plan_and_the_saved_plan_show_the_labels(
    user: Any, api: Any, client: Any, worker: Any
) -> None:
    for _ in range(3):
        _measure(user, generation_ratio=0.5, perplexity=21.0)
    client.force_login(user)
    query = {
        "model": MODEL,
        "gpus_chosen": ["worker:w1"],
        "formats": [FORMAT, "gguf-Q8_0"],
        "context_tokens": "2048",
        "concurrency": "1",
        "engine": "llama.cpp",
        "kv_cache_dtype": "f16",
        "utilization": "0.5",
    }
    page = client.get(reverse("plan"), query)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Worker w1" in html  # the form offers the worker as a device
    assert "calibrated from 3 runs" in html
    assert '<span class="badge ok">measured</span>' in html
    assert "your job " in html
    # A saved plan keeps the numbers with their labels, and its page shows them.
    saved = api.post(
        "/api/v1/plans/", {**PLAN, "save": True, "name": "ledger"}, format="json"
    )
    assert saved.status_code == 201
    plan = Plan.objects.get(user=user, name="ledger")
    row = next(r for r in plan.report["results"] if r["format"] == FORMAT)
    assert row["sources"]["decode_tokens_per_s"] == "calibrated from 3 runs"
    assert row["sources"]["quality"].startswith("measured (your job ")
    detail = client.get(reverse("plan-detail", args=[plan.pk])).content.decode()
    assert "calibrated from 3 runs" in detail


def test_the_public_planner_names_no_workers(
    client: Any, user: Any, worker: Any
) -> None:
    anonymous = client.get(reverse("plan")).content.decode()
    assert "worker:w1" not in anonymous and "Worker w1" not in anonymous
    refused = client.get(
        reverse("plan"), {"model": MODEL, "gpus_chosen": ["worker:w1"]}
    )
    assert "calibrated from" not in refused.content.decode()
    client.force_login(user)
    assert "Worker w1" in client.get(reverse("plan")).content.decode()


def test_the_shown_plan_is_the_saved_ones_and_a_new_measurement_changes_it(
    user: Any, api: Any, worker: Any
) -> None:
    first = api.post("/api/v1/plans/", PLAN, format="json").json()
    again = api.post("/api/v1/plans/", PLAN, format="json").json()  # memoised
    assert again == first
    # A saved plan is planned afresh (plan_compute), and says the same.
    saved = api.post("/api/v1/plans/", {**PLAN, "save": True}, format="json")
    assert saved.status_code == 201
    saved_body = saved.json()
    saved_body.pop("id")
    assert saved_body == first
    assert _row(first)["expected_quality_loss"]["kind"] == "published-estimate"

    _measure(user, generation_ratio=0.5, perplexity=21.0)
    after = _row(api.post("/api/v1/plans/", PLAN, format="json").json())
    assert after["expected_quality_loss"]["kind"] == "measured"
    assert after["expected_quality_loss"]["perplexity_increase_pct"] == pytest.approx(5)
    assert after["artifact_bytes"] == 105_123_456
