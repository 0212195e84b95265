"""Every JSON answer of the API, live, against the OpenAPI schema it publishes.

One user with real objects built through the services (a saved plan, a job whose
result is published the way the worker publishes one, a checked upload, a worker's
heartbeat), then every GET and POST operation is called and each body validated
with ``jsonschema`` against ``/api/schema/``: a field the schema does not name, a
missing required field, or a value of another type fails the test (see
``tests/api_schema.py``). Error answers (400, 401, 403, 404, 409) are checked too.
The last assertion is that no operation with a JSON body was left out.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.api_schema import SCHEMA_URL, json_operations, problems

pytestmark = pytest.mark.django_db

FORMAT = "gguf-Q4_K_M"


def _published_job(user: Any, plan: Any) -> Any:
    """A finished GGUF job whose result went through ``publish_result``, with the
    metrics a real evaluation reports (speed runs, prompt/answer quality, reference,
    importance matrix), built by the same functions the backends use."""
    from django.conf import settings

    from planner.engine.device import WorkerFingerprint
    from quantjobs.artifacts import publish_result
    from quantjobs.backends.base import EvaluateResult
    from quantjobs.backends.gguf.serving import ServingMeasurement, SpeedSamples
    from quantjobs.backends.reference import dequantized
    from quantjobs.backends.task_quality import QaAnswer, summarise
    from quantjobs.models import Job, WorkerHeartbeat
    from quantjobs.samples import SAMPLES
    from quantjobs.worker import capabilities

    fingerprint = WorkerFingerprint(
        cpu_model="AMD EPYC", cores_used=2, system_info="CPU : AVX2 = 1 |"
    )
    WorkerHeartbeat.objects.create(
        hostname="w1",
        queues=["cpu"],
        capabilities={**capabilities(), "fingerprint": fingerprint.to_dict()},
    )
    job = Job.objects.create(
        user=user,
        method=Job.Method.GGUF,
        formats=[FORMAT],
        source_kind=Job.SourceKind.SAMPLE,
        source_ref=next(iter(SAMPLES)),
        model_id="smollm2-135m-instruct",
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        worker="w1",
        plan=plan,
    )
    serving = ServingMeasurement(
        pid=4242,
        peak_memory_bytes=180 * 2**20,
        peak_memory_after_bench_bytes=190 * 2**20,
        context_tokens=512,
        load_time_s=0.4,
        threads=2,
        prompt=SpeedSamples("pp128", 128, (410.0, 400.5, 395.25)),
        generation=SpeedSamples("tg32", 32, (40.5, 39.75, 41.0)),
        load_average_before=(0.5, 0.4, 0.3),
        load_average_after=(0.9, 0.5, 0.3),
        system_info="CPU : AVX2 = 1 |",
        cpu_model="AMD EPYC",
        notes=("the machine was shared",),
    )
    pairs = [("2+2=", "4"), ("The capital of France is", "Paris")]
    reference = [QaAnswer(i, p, a, a) for i, (p, a) in enumerate(pairs)]
    candidate = [
        QaAnswer(0, "2+2=", "4", "4"),
        QaAnswer(1, pairs[1][0], "Paris", "Lyon"),
    ]
    measured = EvaluateResult(
        perplexity=21.0,
        base_perplexity=20.0,
        kl_divergence=0.02,
        top1_agreement=0.9,
        tokens_evaluated=2048,
        prompt_tokens_per_s=400.5,
        generation_tokens_per_s=40.5,
        peak_memory_bytes=180 * 2**20,
        load_time_s=0.4,
        exact_match=0.5,
        task=summarise(reference, candidate),
        serving=serving.to_dict(),
    )
    work = Path(settings.QUANTPLAN_WORK_ROOT) / str(job.pk)
    work.mkdir(parents=True)
    artifact = work / "model-Q4_K_M.gguf"
    artifact.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    # The child's "result" event (quantjobs/backends/child.py), as the runner gets it.
    publish_result(
        job=job,
        event={
            "event": "result",
            "format": FORMAT,
            "artifact_path": str(artifact),
            "artifact_kind": "file",
            "size_bytes": artifact.stat().st_size,
            "sha256": None,
            "metrics": {
                **dataclasses.asdict(measured),
                "job_peak_memory_bytes": 300 * 2**20,
                "job_pid": 77,
            },
            "metadata": {
                "imatrix": {"matrices": 30, "chunks": 4, "tokens": 2048},
                "calibration_source": "built-in",
            },
            "reference": dequantized("Q4_1"),
        },
    )
    # The job answers as a finished search does: bar, candidates, trail, answer.
    from planner.engine.search import search_bar
    from quantjobs.search import new_search, search_conclude, search_record_trial

    job.search = new_search(
        search_bar("perplexity_change_pct", 3.0),
        [
            {"format": "gguf-Q3_K_M", "projected_bytes": 90_000_000},
            {"format": FORMAT, "projected_bytes": None},
        ],
        "projected file size (planner engine)",
    )
    job.save(update_fields=["search"])
    for fmt, value, passed in (("gguf-Q3_K_M", 7.5, False), (FORMAT, 2.1, True)):
        search_record_trial(
            job=job,
            event={"format": fmt, "value": value, "passed": passed, "reason": "x"},
        )
    search_conclude(job=job)
    return job


@pytest.fixture
def session_api(user: Any) -> APIClient:
    """A signed-in browser session (only a session may create tokens)."""
    client = APIClient()
    client.force_login(user)
    return client


def test_every_json_answer_matches_the_schema(
    api: Any,
    session_api: APIClient,
    user: Any,
    client: Any,
    redis_url: str,
    clean_media: Path,
    tiny_ggufs: dict[str, Path],
) -> None:
    from planner import services as plan_services
    from planner.services import PlanInput
    from quantjobs.models import Job
    from quantjobs.uploads import model_upload_check

    openapi = client.get(SCHEMA_URL).json()
    data = PlanInput(model="llama-3.1-8b", gpu="l4", formats=(FORMAT, "gguf-Q8_0"))
    plan = plan_services.plan_save(
        user=user,
        name="8B on an L4",
        data=data,
        report=plan_services.plan_compute(data=data, user=user),
    )
    job = _published_job(user, plan)
    validated: set[str] = set()
    failures: list[str] = []

    def check(
        method: str, url: str, expect: int, *, via: Any = api, **kwargs: Any
    ) -> Any:
        response = getattr(via, method)(url, **kwargs)
        assert response.status_code == expect, (
            method,
            url,
            response.status_code,
            response.content[:600],
        )
        label, wrong = problems(openapi, method, url, response)
        failures.extend(wrong)
        if 200 <= expect < 300:
            validated.add(label)
        return response.json() if response.content and expect != 204 else None

    as_json = {"format": "json"}
    # Plans: computed, saved, listed, read, served.
    body = check(
        "post",
        "/api/v1/plans/",
        200,
        data={"model": "llama-3.1-8b", "gpu": "l4"},
        **as_json,
    )
    assert body["results"] and body["recommendation"]["reasons"] is not None
    body = check(
        "post",
        "/api/v1/plans/",
        201,
        data={"model": "llama-3.1-8b", "gpu": "l4", "save": True, "formats": [FORMAT]},
        **as_json,
    )
    check("get", "/api/v1/plans/", 200)
    check("get", f"/api/v1/plans/{plan.pk}/", 200)
    recipes = check("get", f"/api/v1/plans/{plan.pk}/recipes/", 200)
    assert recipes["recipes"]
    check(
        "post",
        "/api/v1/capacity/",
        200,
        data={
            "model": "llama-3.1-8b",
            "gpus": ["l4", "a100-80gb"],
            "requests_per_s": 1,
        },
        **as_json,
    )
    check(
        "post",
        "/api/v1/finetune/",
        200,
        data={"model": "llama-3.1-8b", "gpu": "a100-80gb", "method": "qlora"},
        **as_json,
    )
    for kind in ("models", "gpus", "formats", "api-prices"):
        assert check("get", f"/api/v1/catalog/{kind}/", 200, via=client)

    # Jobs: the published one with every measured field, a new one, its commands.
    body = check("get", f"/api/v1/jobs/{job.pk}/", 200)
    result = body["results"][0]
    for nested in ("speed", "task_quality", "calibration", "reference"):
        assert result[nested], (nested, result)
    assert result["projected_generation_tokens_per_s"], result
    check("get", "/api/v1/jobs/", 200)
    check("get", "/api/v1/jobs/?status=SUCCEEDED", 200)
    check("get", f"/api/v1/jobs/{job.pk}/recipes/", 200)
    created = check(
        "post",
        "/api/v1/jobs/",
        201,
        data={"method": "gguf", "formats": [FORMAT], "source_kind": "sample"},
        **as_json,
    )
    check("post", f"/api/v1/jobs/{created['id']}/cancel/", 200)
    check("post", f"/api/v1/jobs/{job.pk}/rerun/", 201)
    check("get", "/api/v1/artifacts/", 200)
    check("get", "/api/v1/measurements/", 200)
    check("get", "/api/v1/workers/", 200)

    # Uploads: stored, checked as the worker's task checks them, read, listed.
    gguf = tiny_ggufs["qwen2"]
    upload = check(
        "post",
        "/api/v1/uploads/",
        201,
        data={"file": SimpleUploadedFile(gguf.name, gguf.read_bytes())},
        format="multipart",
    )
    model_upload_check(upload_id=upload["id"])
    body = check("get", f"/api/v1/uploads/{upload['id']}/", 200)
    # Its check loads the file in llama.cpp in a child limited to 30 s: on a machine
    # too busy for that it is refused for the time, an answer the schema covers too.
    if "took longer than" not in body["reason"]:
        assert body["status"] == "ready" and body["summary"], body["reason"]
    check("get", "/api/v1/uploads/", 200)

    # Tokens: made in a session, listed with a token.
    check(
        "post", "/api/v1/tokens/", 201, via=session_api, data={"name": "ci"}, **as_json
    )
    check("get", "/api/v1/tokens/", 200)

    # Errors a user can cause have the documented shapes too.
    check("post", "/api/v1/plans/", 400, data={"gpu": "l4"}, **as_json)
    check("get", "/api/v1/jobs/", 401, via=APIClient())
    check("get", f"/api/v1/jobs/{uuid.uuid4()}/", 404)
    check("post", "/api/v1/tokens/", 403, data={"name": "x"}, **as_json)
    check("post", f"/api/v1/jobs/{job.pk}/cancel/", 400)
    queued = Job.objects.create(
        user=user, method=Job.Method.GGUF, formats=[FORMAT], source_kind="sample",
        source_ref=job.source_ref,
    )  # fmt: skip
    check("get", f"/api/v1/jobs/{queued.pk}/recipes/", 409)

    assert not failures, "\n".join(failures)
    left_out = json_operations(openapi) - validated
    assert not left_out, f"operations not driven by this test: {sorted(left_out)}"
