"""GGUF Q8_0 and Q4_K_M of the sample through the API, a real worker and real llama.cpp."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api_schema import SCHEMA_URL, problems
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker]

LOAD_AND_GENERATE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
out = llm("The capital of France is", max_tokens=8, temperature=0.0)
print(out["choices"][0]["text"])
"""


def test_sample_q8_0_and_q4_k_m_end_to_end(
    api: Any, start_worker: Any, clean_media: Any
) -> None:
    start_worker("cpu")
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0", "gguf-Q4_K_M"],
            "source_kind": "sample",
            "max_chunks": 6,
            "context_tokens": 512,
            # Smaller than llama-bench's pp512/tg128 x5 to keep the test short.
            "bench_prompt_tokens": 128,
            "bench_generation_tokens": 32,
            "bench_repetitions": 3,
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
        timeout_s=900,
        interval_s=1.0,
    )
    assert body["status"] == "SUCCEEDED", (body["error"], body["log"][-20:])
    # The real answer, every measured field of it, is what the schema says it is.
    url = f"/api/v1/jobs/{job_id}/"
    _label, off_schema = problems(api.get(SCHEMA_URL).json(), "get", url, api.get(url))
    assert not off_schema, off_schema
    results = {r["format"]: r for r in body["results"]}
    assert set(results) == {"gguf-Q8_0", "gguf-Q4_K_M"}

    q8, q4 = results["gguf-Q8_0"], results["gguf-Q4_K_M"]
    assert abs(q8["perplexity"] - q8["base_perplexity"]) / q8["base_perplexity"] < 0.01
    assert q4["kl_divergence"] < 0.1
    assert q8["kl_divergence"] < q4["kl_divergence"]
    assert 0.5 < q4["top1_agreement"] <= 1.0
    for row in (q8, q4):
        assert row["projected_artifact_bytes"], row
        assert abs(row["artifact_bytes_diff_pct"]) < 0.5, row
        assert row["generation_tokens_per_s"] > 0 and row["prompt_tokens_per_s"] > 0
        assert row["peak_memory_bytes"] > 50 * 2**20
        # Memory of a fresh serving process, not of the job that quantized it.
        speed = row["speed"]
        assert "fresh process" in row["memory_measured_how"]
        assert speed["process_id"] and speed["threads"] >= 1
        assert row["job_peak_memory_bytes"] > row["peak_memory_bytes"]
        assert abs(row["memory_diff_pct"]) < 10, row
        assert speed["generation"]["repetitions"] == 3
        assert speed["prompt"]["test"] == "pp128"
        gen = speed["generation"]
        assert gen["min_tokens_per_s"] <= gen["median_tokens_per_s"]
        assert gen["median_tokens_per_s"] <= gen["max_tokens_per_s"]
        # Projected speed for this worker's device stands beside it.
        assert row["projected_generation_tokens_per_s"] > 0
        assert row["projected_prompt_tokens_per_s"] > 0
        assert row["generation_tokens_per_s_diff_pct"] is not None
        assert "generation_tokens_per_s" in row["provenance"]["measured"]
        assert "projected_generation_tokens_per_s" in row["provenance"]["estimated"]

        download = api.get(f"/api/v1/artifacts/{row['artifact_id']}/download/")
        assert download.status_code == 200
        assert download["Content-Disposition"].startswith("attachment;")
        path = clean_media / "downloaded.gguf"
        with path.open("wb") as handle:
            for chunk in download.streaming_content:
                handle.write(chunk)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        generated = subprocess.run(
            [sys.executable, "-c", LOAD_AND_GENERATE, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert generated.strip(), "the artifact loads in llama.cpp and generates text"

        ranged = api.get(
            f"/api/v1/artifacts/{row['artifact_id']}/download/", HTTP_RANGE="bytes=0-3"
        )
        assert ranged.status_code == 206
        assert b"".join(ranged.streaming_content) == b"GGUF"
    assert not any(
        p.is_file()
        for p in Path(clean_media / "work").rglob("*")
        if "cache" not in p.parts
    )
