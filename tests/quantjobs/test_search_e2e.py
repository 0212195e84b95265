"""An accuracy-aware GGUF search on the sample, through the API, a real Celery worker
and real llama.cpp: it stops at the first candidate within the bar."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import wait_for

# Two formats made and measured on a shared 2-core machine: allow for a busy one.
pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.timeout(1800)]


def test_a_gguf_search_stops_early_and_keeps_its_trail(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    start_worker("cpu")
    # On this model Q4_K_M loses about 7% perplexity, Q6_K under 1% (docs/benchmarks.md
    # section 7): a 3% bar fails the first, passes the second, never tries Q8_0.
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0", "gguf-Q6_K", "gguf-Q4_K_M"],
            "source_kind": "sample",
            "search_metric": "perplexity_change_pct",
            "search_max": 3,
            "max_chunks": 4,
            "bench_prompt_tokens": 32,
            "bench_generation_tokens": 8,
            "bench_repetitions": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert response.json()["formats"] == ["gguf-Q4_K_M", "gguf-Q6_K", "gguf-Q8_0"]

    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/jobs/{job_id}/").json())["status"]
            in ("SUCCEEDED", "PARTIAL", "FAILED", "TIMED_OUT")
            and b
        ),
        timeout_s=1700,
        interval_s=1.0,
    )
    assert body["status"] == "SUCCEEDED", (body["error"], body["log"][-20:])
    search = body["search"]
    trail = search["trail"]
    assert [(t["format"], t["passed"]) for t in trail] == [
        ("gguf-Q4_K_M", False),
        ("gguf-Q6_K", True),
    ], trail
    assert trail[0]["value"] > 3 > trail[1]["value"] >= -1
    assert trail[0]["reason"].startswith("failed: perplexity change ")
    assert search["answer"] == "gguf-Q6_K"
    assert "Tried 2 of 3 candidates" in search["summary"]
    results = {r["format"]: r for r in body["results"]}
    assert set(results) == {"gguf-Q4_K_M", "gguf-Q6_K"}  # Q8_0 never made
    assert results["gguf-Q6_K"]["artifact_id"] is not None
    assert results["gguf-Q4_K_M"]["artifact_id"] is None  # measured, file removed
    assert results["gguf-Q4_K_M"]["perplexity_change_pct"] == pytest.approx(
        trail[0]["value"], abs=1e-3
    )
    assert any("stopping early" in line for line in body["log"])
