"""Projections beside measurements: per runtime, for the worker's own device."""

from __future__ import annotations

from typing import Any

import pytest

from quantjobs.models import Job, WorkerHeartbeat
from quantjobs.projections import (
    NO_PROJECTION,
    device_projection_for,
    fingerprint_of_worker,
    projection_for,
)

pytestmark = pytest.mark.django_db

AVX512 = "CPU : AVX = 1 | AVX2 = 1 | AVX512 = 1 | REPACK = 1 |"
SERVING = {
    "threads": 2,
    "context_tokens": 512,
    "system_info": AVX512,
    "cpu_model": "AMD EPYC",
    "prompt": {"tokens": 512},
    "generation": {"tokens": 128},
}


def _job(user: Any, method: str, fmt: str, worker: str = "w1") -> Job:
    return Job.objects.create(
        user=user,
        method=method,
        formats=[fmt],
        source_kind="sample",
        source_ref="smollm2-135m-instruct-q4_1",
        model_id="smollm2-135m-instruct",
        worker=worker,
    )


@pytest.mark.parametrize("fmt", ["rtn-int4-g64", "awq-4bit-g128", "gptq-4bit-g128"])
def test_a_torch_format_is_never_held_against_the_llama_cpp_model(
    user: Any, fmt: str
) -> None:
    method = fmt.split("-")[0]
    job = _job(user, method, fmt)
    projected = {
        **projection_for(job, fmt),
        **device_projection_for(job, fmt, None, {}),
    }
    assert projected["artifact_bytes"] > 0
    assert projected["memory_bytes"] is None
    assert projected["memory_note"] == NO_PROJECTION
    assert projected["speed_note"] == NO_PROJECTION
    assert "prompt_tokens_per_s" not in projected


def test_a_gguf_format_gets_speed_and_memory_for_the_workers_device(user: Any) -> None:
    job = _job(user, "gguf", "gguf-Q4_K_M")
    slow = device_projection_for(
        job, "gguf-Q4_K_M", {"memory_bandwidth_bytes_per_s": 10e9}, SERVING
    )
    fast = device_projection_for(
        job, "gguf-Q4_K_M", {"memory_bandwidth_bytes_per_s": 40e9}, SERVING
    )
    assert fast["generation_tokens_per_s"] > slow["generation_tokens_per_s"] > 0
    assert fast["prompt_tokens_per_s"] > 0
    assert fast["memory_bytes"] == slow["memory_bytes"] > 0
    assert "40.0 GB/s measured" in fast["speed_device"]
    assert fast["speed_basis"].startswith("estimated")
    assert fast["fingerprint"]["cores_used"] == 2


def test_memory_is_projected_at_the_context_the_artifact_was_measured_at(
    user: Any,
) -> None:
    job = _job(user, "gguf", "gguf-Q4_K_M")
    at_512 = device_projection_for(job, "gguf-Q4_K_M", None, SERVING)
    at_4096 = device_projection_for(
        job, "gguf-Q4_K_M", None, {**SERVING, "context_tokens": 4096}
    )
    assert at_512["context_tokens"] == 512 and at_4096["context_tokens"] == 4096
    assert at_4096["kv_cache_bytes"] == 8 * at_512["kv_cache_bytes"]
    assert at_4096["memory_bytes"] > at_512["memory_bytes"]


def test_the_fingerprint_comes_from_the_workers_heartbeat(user: Any) -> None:
    assert fingerprint_of_worker("w1") is None
    WorkerHeartbeat.objects.create(
        hostname="w1",
        queues=["cpu"],
        capabilities={"fingerprint": {"cpu_model": "AMD EPYC", "cores_used": 2}},
    )
    assert fingerprint_of_worker("w1") == {"cpu_model": "AMD EPYC", "cores_used": 2}
