"""Cost: hourly prices, month of 730 hours, per-token cost, API break-even, job cost."""

from __future__ import annotations

import pytest

from planner.engine import (
    ApiPrice,
    GpuSpec,
    ModelSpec,
    estimate_speed,
    hourly_price_usd,
    parse_format,
    quantization_job_estimate,
)
from planner.engine.cost import estimate_cost


def test_cheapest_price_provider_or_override(h100: GpuSpec) -> None:
    assert hourly_price_usd(h100)[0] == 2.0
    assert hourly_price_usd(h100, provider="dear")[0] == 4.0
    assert hourly_price_usd(h100, override_usd_per_hour=1.5) == (
        1.5,
        "price given in the request",
    )
    price, why = hourly_price_usd(h100, provider="nobody")
    assert price is None and "nobody" in why


def _cost(
    spec: ModelSpec, gpu: GpuSpec, utilization: float = 1.0, api: ApiPrice | None = None
):
    speed = estimate_speed(
        spec,
        parse_format("fp16"),
        gpu,
        engine="vllm",
        gpus=2,
        concurrency=16,
        prompt_tokens=1000,
        output_tokens=500,
    )
    return speed, estimate_cost(
        speed,
        usd_per_gpu_hour=2.0,
        price_source="test",
        gpus=2,
        utilization=utilization,
        prompt_tokens=1000,
        output_tokens=500,
        api=api,
    )


def test_month_is_730_hours_of_every_gpu(llama3_8b: ModelSpec, h100: GpuSpec) -> None:
    _, cost = _cost(llama3_8b, h100)
    assert cost.usd_per_hour == 4.0
    assert cost.usd_per_month == pytest.approx(4.0 * 730)


def test_per_token_cost_follows_throughput_and_utilization(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    speed, full = _cost(llama3_8b, h100, utilization=1.0)
    _, half = _cost(llama3_8b, h100, utilization=0.5)
    assert full.usd_per_million_output_tokens == pytest.approx(
        4.0 / 3600 / speed.total_decode_tokens_per_s * 1e6
    )
    assert half.usd_per_million_tokens == pytest.approx(2 * full.usd_per_million_tokens)
    assert full.usd_per_million_input_tokens < full.usd_per_million_output_tokens
    blended = (
        1000 * full.usd_per_million_input_tokens
        + 500 * full.usd_per_million_output_tokens
    ) / 1500
    assert full.usd_per_million_tokens == pytest.approx(blended)


def test_break_even_is_monthly_cost_over_the_api_price(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    api = ApiPrice(
        "x",
        "X",
        "x",
        usd_per_million_input_tokens=1.0,
        usd_per_million_output_tokens=4.0,
    )
    _, cost = _cost(llama3_8b, h100, api=api)
    assert cost.api_usd_per_million_tokens == pytest.approx(
        2.0
    )  # (1000*1 + 500*4)/1500
    assert cost.break_even_tokens_per_month == pytest.approx(4.0 * 730 / 2.0 * 1e6)


def test_unknown_price_leaves_costs_empty_with_a_note(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    speed = estimate_speed(
        llama3_8b,
        parse_format("fp16"),
        h100,
        engine="vllm",
        gpus=1,
        concurrency=1,
        prompt_tokens=10,
        output_tokens=10,
    )
    cost = estimate_cost(
        speed,
        usd_per_gpu_hour=None,
        price_source="no price",
        gpus=1,
        utilization=1.0,
        prompt_tokens=10,
        output_tokens=10,
    )
    assert cost.usd_per_hour is None and cost.notes


def test_quantization_jobs_cost_time_memory_and_money(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    gguf = quantization_job_estimate(
        llama3_8b, parse_format("gguf-Q4_K_M"), h100, usd_per_gpu_hour=2.0
    )
    imatrix = quantization_job_estimate(
        llama3_8b, parse_format("gguf-IQ2_XXS"), h100, usd_per_gpu_hour=2.0
    )
    gptq = quantization_job_estimate(
        llama3_8b, parse_format("gptq-4bit-g128"), h100, usd_per_gpu_hour=2.0
    )
    assert not gguf.needs_gpu and imatrix.needs_gpu and gptq.needs_gpu
    assert gptq.time_s > gguf.time_s > 0
    assert gptq.gpu_memory_bytes > 0 and gguf.host_memory_bytes > 16e9
    assert gptq.usd is not None and gptq.usd > 0
    assert any("imatrix" in s or "importance" in s for s in imatrix.steps)
