"""Jobs from plans name the model they really quantize, and an already quantized
source is said to be one (issue 12, points 5 and 6): the job form, the job page, the
API, the recipes and ``manage.py quantize``."""

from __future__ import annotations

import html as htmllib
import json
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from tests.helpers import wait_for

SAMPLE_NAME = "SmolLM2 135M Instruct"
PLAN_MODEL = "Llama 3 70B"
REFERENCE = "the Q4_1 file, dequantized"


def _plan(user: Any, model: str = "llama-3-70b") -> Any:
    from planner import services

    data = services.PlanInput(
        gpu="a100-80gb", model=model, formats=("fp16", "gguf-Q4_K_M"),
        context_tokens=8192, concurrency=4,
    )  # fmt: skip
    report = services.plan_compute(data=data, user=user)
    return services.plan_save(user=user, name="70B plan", data=data, report=report)


def _page(client: Any, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def _benchmark_link(client: Any, plan: Any) -> str:
    page = _page(client, f"/plans/{plan.pk}/")
    href = re.search(r'class="button benchmark-button" href="([^"]+)"', page)
    assert href is not None
    return htmllib.unescape(href.group(1))


def _selected(page: str, field: str) -> str:
    select = re.search(rf'<select name="{field}"[^>]*>.*?</select>', page, re.S)
    assert select is not None
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(0))
    assert chosen is not None
    return chosen.group(1)


def _input_value(page: str, field: str) -> str:
    found = re.search(rf'<input[^>]*name="{field}"[^>]*>', page)
    assert found is not None
    value = re.search(r'value="([^"]*)"', found.group(0))
    return htmllib.unescape(value.group(1)) if value else ""


def _not_named_as_the_plans_model(text: str) -> None:
    """The plan's model may appear only as what a stand-in stands in for."""
    lowered = text.lower()
    assert "llama-3-70b" not in lowered and "meta-llama-3-70b" not in lowered, text
    assert text.count("70B") == text.count(f"stand-in for {PLAN_MODEL}") + text.count(
        f"not {PLAN_MODEL}"
    ), text


@pytest.mark.django_db
def test_a_plans_benchmark_button_offers_the_plans_model_from_hugging_face(
    client: Any, user: Any
) -> None:
    client.force_login(user)
    plan = _plan(user)

    link = _benchmark_link(client, plan)
    page = _page(client, link)

    assert "name=" not in link.split("?", 1)[1]  # no job name borrowed from the plan
    assert _selected(page, "source_kind") == "hf"
    assert _input_value(page, "source_ref") == "meta-llama/Meta-Llama-3-70B"
    notice = page.split('id="plan-source-notice"')[1].split("</div>")[0]
    assert f"This plan is for {PLAN_MODEL}" in notice
    assert f"quantizes <strong>{SAMPLE_NAME}</strong> as a stand-in" in notice
    assert f"Bundled sample: {SAMPLE_NAME}, already quantized (Q4_1)" in page
    assert "adds to what Q4_1 already lost" in page


@pytest.mark.django_db
def test_a_plan_of_a_hugging_face_id_preselects_that_id(client: Any, user: Any) -> None:
    from planner.models import Plan

    client.force_login(user)
    # A plan made from a Hugging Face id outside the catalog (planning it needs the
    # hub, which this machine cannot reach; the saved row is what the form reads).
    plan = Plan.objects.create(
        user=user, name="qwen", model_id="Qwen/Qwen2.5-0.5B", request={}, report={}
    )

    page = _page(client, f"/jobs/new/?method=gguf&formats=gguf-Q4_K_M&plan={plan.pk}")

    assert _selected(page, "source_kind") == "hf"
    assert _input_value(page, "source_ref") == "Qwen/Qwen2.5-0.5B"
    assert "This plan is for Qwen/Qwen2.5-0.5B" in page


@pytest.mark.django_db
def test_another_users_plan_preselects_nothing(
    client: Any, user: Any, other_user: Any
) -> None:
    client.force_login(other_user)
    plan = _plan(user)

    page = _page(client, f"/jobs/new/?method=gguf&formats=gguf-Q4_K_M&plan={plan.pk}")

    assert _selected(page, "source_kind") == "sample"
    assert "Meta-Llama-3-70B" not in page and "plan-source-notice" not in page


@pytest.mark.django_db
def test_a_plans_benchmark_button_prefers_an_upload_of_the_plans_model(
    client: Any, user: Any
) -> None:
    from quantjobs.models import ModelUpload

    client.force_login(user)
    plan = _plan(user)
    upload = ModelUpload.objects.create(
        user=user, filename="Meta-Llama-3-70B.Q4_K_M.gguf", kind="gguf",
        path="x/Meta-Llama-3-70B.Q4_K_M.gguf", size_bytes=1, sha256="0" * 64,
        model_id="llama-3-70b", summary={"file_type": "Q4_K_M"},
    )  # fmt: skip

    page = _page(client, _benchmark_link(client, plan))

    assert _selected(page, "source_kind") == "upload"
    assert _input_value(page, "source_ref") == str(upload.pk)
    uploads = page.split('id="your-uploads"')[1].split("</div>")[0]
    assert "already quantized (Q4_K_M)" in uploads
    assert "adds to what Q4_K_M already lost" in uploads


def test_a_stand_in_job_from_a_plan_is_named_and_shown_as_the_sample(
    client: Any, user: Any, redis_url: str
) -> None:
    from quantjobs.models import Job

    client.force_login(user)
    plan = _plan(user)
    response = client.post(
        "/jobs/new/",
        {"method": "gguf", "formats": "gguf-Q4_K_M", "source_kind": "sample",
         "source_ref": "", "plan": str(plan.pk)},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = Job.objects.get(user=user)

    assert SAMPLE_NAME in job.name
    _not_named_as_the_plans_model(job.name)
    assert f"a stand-in for {PLAN_MODEL}" in job.log
    assert f"Reference for quality: {REFERENCE}." in job.log
    page = _page(client, f"/jobs/{job.pk}/")
    assert f"stand-in for {PLAN_MODEL}" in page
    assert re.search(rf'id="job-model">{SAMPLE_NAME}\b', page)
    assert f'id="job-reference">{REFERENCE}<' in page
    assert "adds to what Q4_1 already lost" in page
    assert "the plan this job measures" not in page


def test_a_job_on_the_plans_own_hugging_face_model_is_no_stand_in(
    api: Any, user: Any, redis_url: str
) -> None:
    plan = _plan(user)

    response = api.post(
        "/api/v1/jobs/",
        {"method": "gguf", "formats": ["gguf-Q4_K_M"], "source_kind": "hf",
         "source_ref": "meta-llama/Meta-Llama-3-70B", "plan": str(plan.pk)},
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    model = response.json()["model"]
    assert model["name"] == "meta-llama/Meta-Llama-3-70B"
    assert model["same_as_plan"] is True and model["stand_in_for"] is None
    # Nothing is known about its weights until the worker has them.
    assert model["reference"] is None


def test_the_cli_says_what_it_quantizes_and_what_it_is_measured_against(
    user: Any, redis_url: str
) -> None:
    out = StringIO()
    call_command(
        "quantize", "--source", "sample", "--type", "Q4_K_M", "--user", "alice",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()

    assert f"model: {SAMPLE_NAME}" in text
    assert f"reference: {REFERENCE}" in text
    assert "warning: The source was already quantized (Q4_1)" in text

    out = StringIO()
    call_command(
        "quantize", "--source", "sample", "--type", "Q8_0", "--user", "alice",
        "--json", stdout=out,
    )  # fmt: skip
    body = json.loads(out.getvalue())
    assert body["model"]["reference"]["label"] == REFERENCE
    assert body["model"]["source_quantization"] == "Q4_1"
    assert SAMPLE_NAME in body["name"]


@pytest.mark.slow
@pytest.mark.worker
def test_a_plan_measured_on_the_sample_says_so_in_every_output(
    client: Any, api: Any, user: Any, start_worker: Any, clean_media: Any
) -> None:
    """Plan Llama-3-70B, quantize the sample as its stand-in with the real worker and
    llama.cpp: job, artifact, recipes, page and API name the sample, and the reference
    is the Q4_1 file, dequantized. The plan's own model, as the form offers it, fails
    offline with a reason that says Hugging Face cannot be reached."""
    start_worker("cpu", HF_HUB_OFFLINE="1")  # this machine has no internet anyway
    client.force_login(user)
    plan = _plan(user)
    response = client.post(
        "/jobs/new/",
        {"method": "gguf", "formats": "gguf-Q4_K_M", "source_kind": "sample",
         "source_ref": "", "plan": str(plan.pk), "context_tokens": "256",
         "max_chunks": "4"},
    )  # fmt: skip
    assert response.status_code == 302
    job_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]

    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job_id}/").json())["status"]
            in ("SUCCEEDED", "FAILED", "TIMED_OUT")
            and b
        ),
        timeout_s=900,
        interval_s=1.0,
    )
    assert body["status"] == "SUCCEEDED", (body["error"], body["log"][-20:])

    # The API: the job, its model and its result's reference.
    assert SAMPLE_NAME in body["name"]
    _not_named_as_the_plans_model(body["name"])
    assert body["model"]["stand_in_for"] == PLAN_MODEL
    assert body["model"]["reference"]["label"] == REFERENCE
    (result,) = body["results"]
    assert result["reference"]["label"] == REFERENCE
    assert result["reference"]["quantized_source"] is True
    assert any(
        line.endswith(f"Warning: {result['reference']['warning']}")
        for line in body["log"]
    )
    # The worker's own finding, not only what was known when the job was created.
    assert any("dequantizing to an F16 base" in line for line in body["log"])

    # The artifact.
    (artifact,) = api.get("/api/v1/artifacts/").json()["results"]
    assert "smollm2" in artifact["filename"].lower()
    assert "llama" not in artifact["filename"].lower()
    assert "70b" not in artifact["filename"].lower()

    # The recipes serve the sample under its own name.
    recipes = api.get(f"/api/v1/jobs/{job_id}/recipes/").json()["recipes"]
    assert recipes
    for recipe in recipes:
        assert "smollm2-135m-instruct" in recipe["content"], recipe["id"]
        _not_named_as_the_plans_model(recipe["content"])

    # The page.
    page = _page(client, f"/jobs/{job_id}/")
    assert f"stand-in for {PLAN_MODEL}" in page
    assert f"Reference perplexity on the same tokens ({REFERENCE})" in page
    assert "Quality vs. the dequantized source" in page
    assert "Unquantized perplexity" not in page
    assert "Quality vs. unquantized" not in page
    assert "over the unquantized model" not in page
    assert "full precision" not in page.lower()

    # The plan's own model, exactly as the form preselects it, on an offline worker.
    form = _page(client, _benchmark_link(client, plan))
    response = client.post(
        "/jobs/new/",
        {"method": "gguf", "formats": "gguf-Q4_K_M",
         "source_kind": _selected(form, "source_kind"),
         "source_ref": _input_value(form, "source_ref"), "plan": str(plan.pk)},
    )  # fmt: skip
    assert response.status_code == 302
    own_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    own = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{own_id}/").json())["status"]
            in ("SUCCEEDED", "FAILED", "TIMED_OUT")
            and b
        ),
        timeout_s=300,
        interval_s=1.0,
    )
    assert own["status"] == "FAILED"
    assert "Hugging Face is not reachable" in own["error"]
    assert own["name"].startswith("meta-llama/Meta-Llama-3-70B")
    assert own["model"]["same_as_plan"] is True and own["model"]["stand_in_for"] is None


@pytest.mark.django_db
def test_loss_measured_on_a_requantized_source_never_reaches_a_plan(
    user: Any,
) -> None:
    """Plans read measured quality as loss from the 16-bit model; a loss measured
    against the dequantized Q4_1 sample is not that, so plans keep the estimate."""
    from planner.services import PlanInput, plan_compute, report_to_dict
    from quantjobs.backends.reference import dequantized, unquantized
    from quantjobs.models import Job, JobResult

    def finished(source_kind: str, source_ref: str, fmt: str, metrics: dict) -> None:
        job = Job.objects.create(
            user=user, method="gguf", formats=[fmt], source_kind=source_kind,
            source_ref=source_ref, model_id="smollm2-135m-instruct",
            status=Job.Status.SUCCEEDED,
        )  # fmt: skip
        JobResult.objects.create(
            job=job, format=fmt,
            metrics={"perplexity": 21.0, "base_perplexity": 20.0, **metrics},
        )  # fmt: skip

    finished("sample", "smollm2-135m-instruct-q4_1", "gguf-Q8_0",
             {"reference": dequantized("Q4_1")})  # fmt: skip
    # Stored before results carried a reference: the job's source still says it.
    finished("sample", "smollm2-135m-instruct-q4_1", "gguf-Q6_K", {})
    finished("hf", "HuggingFaceTB/SmolLM2-135M-Instruct", "gguf-Q4_K_M",
             {"reference": unquantized("the source checkpoint (unquantized)")})  # fmt: skip

    data = PlanInput(
        gpu="a100-80gb", model="smollm2-135m-instruct",
        formats=("gguf-Q8_0", "gguf-Q6_K", "gguf-Q4_K_M"), context_tokens=4096,
        concurrency=1,
    )  # fmt: skip
    rows = {
        r["format"]: r["expected_quality_loss"]
        for r in report_to_dict(plan_compute(data=data, user=user))["results"]
    }
    assert rows["gguf-Q4_K_M"]["kind"] == "measured"
    assert rows["gguf-Q4_K_M"]["perplexity_increase_pct"] == 5.0
    assert rows["gguf-Q8_0"]["kind"] != "measured"
    assert rows["gguf-Q6_K"]["kind"] != "measured"
