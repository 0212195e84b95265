"""Every job's results carry the planner's projection, whatever the source.

The end-to-end test runs a GGUF job on a tiny Qwen2 GGUF file (an architecture
other than the sample's) through the API, a real worker and real llama.cpp.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for


@pytest.mark.slow
@pytest.mark.worker
def test_a_job_on_a_gguf_never_seen_shows_the_projection_beside_every_measurement(
    api: Any,
    client: Any,
    user: Any,
    start_worker: Any,
    clean_media: Path,
    local_models: Path,
    tiny_ggufs: dict[str, Path],
) -> None:
    shutil.copy(tiny_ggufs["qwen2"], local_models / "tiny-qwen2.gguf")
    start_worker("cpu")
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0", "gguf-Q4_K_M"],
            "source_kind": "local",
            "source_ref": "tiny-qwen2.gguf",
            "max_chunks": 2,
            "context_tokens": 128,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job_id}/").json())["status"]
            in ("SUCCEEDED", "FAILED", "TIMED_OUT")
            and b
        ),
        timeout_s=600,
        interval_s=1.0,
    )
    assert body["status"] == "SUCCEEDED", (body["error"], body["log"][-20:])
    assert (
        body["model_id"] == ""
    )  # not a catalog model: the projection comes from the file
    results = {r["format"]: r for r in body["results"]}
    assert set(results) == {"gguf-Q8_0", "gguf-Q4_K_M"}
    for row in results.values():
        assert row["projected_model"] == "Tiny Qwen2 Test"
        assert row["projection_note"] is None
        assert abs(row["artifact_bytes_diff_pct"]) < 0.5, row
        assert row["projected_memory_bytes"] and row["peak_memory_bytes"], row
        assert row["memory_diff_pct"] is not None
        assert row["projected_generation_tokens_per_s"] > 0
        assert row["generation_tokens_per_s"] > 0

    client.force_login(user)
    page = client.get(f"/jobs/{job_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Projections are for Tiny Qwen2 Test" in html
    assert html.count("est. ") >= 2  # a speed estimate beside each measured speed


@pytest.mark.django_db
def test_a_hugging_face_job_gets_its_spec_from_the_downloaded_config(
    user: Any,
) -> None:
    from quantjobs.models import Job
    from quantjobs.projections import projection_for
    from quantjobs.runner import ChildOutcome, JobProgress, _handle_event

    job = Job.objects.create(
        user=user,
        method=Job.Method.GGUF,
        formats=["gguf-Q8_0"],
        source_kind=Job.SourceKind.HF,
        source_ref="acme/tiny-qwen",
    )
    assert projection_for(job, "gguf-Q8_0")["unavailable"].startswith("No projection")
    config = {
        "_name_or_path": "acme/tiny-qwen",
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    }
    event = {"event": "model_config", "config": config}
    _handle_event(job, event, ChildOutcome(), JobProgress(job))
    job.refresh_from_db()
    assert job.model_spec["source"] == "config.json"
    projection = projection_for(job, "gguf-Q8_0")
    assert projection["model_name"] == "acme/tiny-qwen"
    # Qwen2.5-0.5B's shape: its Q8_0 GGUF is about 0.53 GB.
    assert 0.45e9 < projection["artifact_bytes"] < 0.6e9
    assert projection["generation_tokens_per_s"] > 0


@pytest.mark.django_db
def test_a_source_the_planner_cannot_size_says_why_on_its_results(user: Any) -> None:
    from quantjobs.models import Job
    from quantjobs.projections import projection_for

    job = Job.objects.create(
        user=user,
        method=Job.Method.GGUF,
        formats=["gguf-Q8_0"],
        source_kind=Job.SourceKind.LOCAL,
        source_ref="/models/x.gguf",
        model_spec={"error": "x.gguf: general.architecture: 'bert' is not ..."},
    )
    assert "'bert' is not" in projection_for(job, "gguf-Q8_0")["unavailable"]
