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


def _owned_gpu(**purchase: object) -> GpuSpec:
    from planner.engine import gpu_spec_from_dict

    return gpu_spec_from_dict(
        {
            "id": "box",
            "memory_bytes": 24e9,
            "memory_bandwidth_bytes_per_s": 1e12,
            "tflops": {"fp16": 100},
            "tdp_w": 500,
            "purchase": {"usd": 36_000, "date": "2026-01-01", **purchase},
        }
    )


def test_owning_is_purchase_over_depreciation_months_plus_electricity() -> None:
    from planner.engine.cost import DATACENTER_PUE, owned_cost_per_month

    gpu = _owned_gpu(depreciation_months=24)
    owned = owned_cost_per_month(gpu, hours_per_month=100, usd_per_kwh=0.30)
    assert owned is not None
    assert owned.depreciation_usd_per_month == 36_000 / 24
    # 500 W x PUE x 100 h x 0.30 USD/kWh
    assert owned.power_usd_per_month == pytest.approx(0.5 * DATACENTER_PUE * 100 * 0.3)
    assert owned.usd_per_month == 1500 + owned.power_usd_per_month


def test_the_electricity_price_is_an_input_with_a_stated_default() -> None:
    from planner.engine.cost import ELECTRICITY_USD_PER_KWH, HOURS_PER_MONTH

    gpu = _owned_gpu()  # depreciation_months defaults to 36
    default, why = hourly_price_usd(gpu, provider="owned")
    dear, _ = hourly_price_usd(gpu, provider="owned", usd_per_kwh=0.50)
    assert default is not None and dear is not None
    kwh_per_hour = 0.5 * 1.3
    assert dear - default == pytest.approx(
        kwh_per_hour * (0.50 - ELECTRICITY_USD_PER_KWH)
    )
    assert default == pytest.approx(
        36_000 / 36 / HOURS_PER_MONTH + kwh_per_hour * ELECTRICITY_USD_PER_KWH
    )
    assert "36 months" in why and f"{ELECTRICITY_USD_PER_KWH:g} USD/kWh" in why


def test_a_lower_bound_says_at_least_and_a_cloud_only_part_cannot_be_owned() -> None:
    from planner.engine import get_gpu

    _, why = hourly_price_usd(_owned_gpu(lower_bound=True), provider="owned")
    assert "at least" in why
    price, why = hourly_price_usd(get_gpu("a10g"), provider="owned")
    assert price is None and "cloud instance" in why


def test_renting_and_owning_compare_for_every_catalog_device_that_is_sold() -> None:
    from planner.engine import load_gpus

    compared = 0
    for gpu in load_gpus():
        owned, _ = hourly_price_usd(gpu, provider="owned")
        rented, _ = hourly_price_usd(gpu)
        if owned is not None and rented is not None:
            compared += 1
            # a units check: an hour owned and an hour rented are within 20x
            assert 0.05 < owned / rented < 20, gpu.id
    assert compared >= 12


def test_a_negative_electricity_price_is_refused() -> None:
    from planner.engine import get_gpu, get_model
    from planner.engine.capacity import (
        CapacityError,
        CapacityRequest,
        Workload,
        capacity_search,
    )

    req = CapacityRequest(
        model=get_model("qwen3-0.6b").spec,
        gpus=[get_gpu("l4")],
        workload=Workload(requests_per_s=1.0),
        electricity_usd_per_kwh=-1.0,
    )
    with pytest.raises(CapacityError, match="electricity_usd_per_kwh"):
        capacity_search(req)


def test_a_device_with_nothing_to_rent_is_priced_by_owning_it() -> None:
    from planner.engine import get_gpu

    mac = get_gpu("apple-m2-ultra")
    assert not mac.prices
    price, why = hourly_price_usd(mac)
    assert price == hourly_price_usd(mac, provider="owned")[0]
    assert price is not None and why.endswith("(no rental price listed)")
