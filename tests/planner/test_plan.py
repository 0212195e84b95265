"""plan(): results per format, engine compatibility, recommendation, Pareto, errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.engine import (
    GpuSpec,
    ModelSpec,
    PlanError,
    PlanRequest,
    list_formats,
    load_gpus,
    load_models,
    plan,
)

REQUIRED_KEYS = {
    "format",
    "parameters",
    "artifact_bytes",
    "weights_bytes",
    "kv_cache_bytes",
    "overhead_bytes",
    "total_bytes_per_gpu",
    "gpus_needed",
    "fits",
    "ttft_s",
    "decode_tokens_per_s",
    "cost_usd_per_hour",
    "cost_usd_per_month",
    "cost_usd_per_million_tokens",
    "expected_quality_loss",
    "assumptions",
    "gpu",
    "gpus",
    "engine",
    "total_decode_tokens_per_s",
    "max_context_tokens",
    "max_concurrency",
    "api_cost_usd_per_million_tokens",
    "break_even_tokens_per_month",
    "quantization_job",
    "needs_cuda",
    "warnings",
}


def _request(spec: ModelSpec, gpu: GpuSpec, **kw: Any) -> PlanRequest:
    return PlanRequest(model=spec, gpu=gpu, **kw)


def test_results_have_every_documented_key_and_are_json(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(llama3_8b, h100, formats=["bf16", "gguf-Q4_K_M", "awq-4bit-g128"])
    )
    assert [r.format for r in report.results] == [
        "bf16",
        "gguf-Q4_K_M",
        "awq-4bit-g128",
    ]
    for r in report.results:
        d = r.to_dict()
        assert REQUIRED_KEYS <= d.keys()
        assert d["quantization_job"].keys() >= {"time_s", "gpu_memory_bytes", "usd"}
        assert d["expected_quality_loss"]["kind"] == "published-estimate"
    json.dumps(report.to_dict())
    assert report.assumptions


def test_fewest_gpus_is_chosen_when_gpus_is_none(
    llama3_70b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(_request(llama3_70b, h100, formats=["bf16", "gptq-4bit-g128"]))
    bf16, gptq = report.results
    assert (bf16.gpus, bf16.gpus_needed, bf16.fits) == (2, 2, True)
    assert (gptq.gpus, gptq.fits) == (1, True)
    assert bf16.cost_usd_per_hour == 2 * gptq.cost_usd_per_hour


def test_a_fixed_gpu_count_that_is_too_small_does_not_fit(
    llama3_70b: ModelSpec, h100: GpuSpec
) -> None:
    result = plan(_request(llama3_70b, h100, gpus=1, formats=["bf16"])).results[0]
    assert not result.fits and result.unfit_reasons


def test_llama_cpp_cannot_run_gptq_and_says_why(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(
            llama3_8b,
            h100,
            engine="llama.cpp",
            formats=["gptq-4bit-g128", "fp16", "gguf-Q4_K_M"],
        )
    )
    gptq, fp16, q4 = report.results
    assert not gptq.fits and "GGUF" in gptq.unfit_reasons[0]
    assert fp16.fits and "gguf-F16" in fp16.warnings[0]
    assert q4.fits


def test_vllm_on_a_mac_or_cpu_is_refused_with_a_reason(
    llama3_8b: ModelSpec, apple: GpuSpec, cpu_server: GpuSpec
) -> None:
    for machine in (apple, cpu_server):
        result = plan(_request(llama3_8b, machine, formats=["awq-4bit-g128"])).results[
            0
        ]
        assert not result.fits and "llama.cpp" in result.unfit_reasons[0]


def test_gguf_on_vllm_is_flagged_experimental(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(_request(llama3_8b, h100, formats=["gguf-Q4_K_M", "awq-4bit-g128"]))
    q4 = report.results[0]
    assert q4.experimental and any("experimental" in w for w in q4.warnings)
    assert report.recommendation.format == "awq-4bit-g128"


def test_recommendation_is_the_cheapest_within_the_quality_limit(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(
            llama3_8b,
            h100,
            engine="llama.cpp",
            formats=["gguf-Q8_0", "gguf-Q4_K_M", "gguf-Q2_K"],
            max_quality_loss_pct=3.0,
        )
    )
    assert report.recommendation.format == "gguf-Q4_K_M"
    assert report.recommendation.reasons
    strict = plan(replace(report.request, max_quality_loss_pct=0.1))
    assert strict.recommendation.format == "gguf-Q8_0"


def test_no_recommendation_says_why(llama3_70b: ModelSpec, a10g: GpuSpec) -> None:
    report = plan(_request(llama3_70b, a10g, gpus=1, formats=["bf16"]))
    assert report.recommendation.format is None
    assert "bf16" in (report.recommendation.why_none or "")


def test_speed_and_ttft_limits_filter_formats(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(llama3_8b, h100, formats=["bf16", "fp8"], min_tokens_per_s=1e6)
    )
    assert report.recommendation.format is None
    report = plan(_request(llama3_8b, h100, formats=["bf16"], max_ttft_s=1e-9))
    assert "time to first token" in (report.recommendation.why_none or "")


def test_pareto_front_keeps_only_undominated_formats(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    formats = ["gguf-Q8_0", "gguf-Q4_K_M", "gguf-Q4_1", "gguf-Q4_0", "gguf-F16"]
    report = plan(_request(llama3_8b, h100, engine="llama.cpp", formats=formats))
    # Q4_1 is both bigger (slower, dearer) and worse than Q4_K_M.
    assert "gguf-Q4_1" not in report.pareto
    assert {"gguf-Q4_0", "gguf-Q4_K_M", "gguf-Q8_0"} <= set(report.pareto)


def test_measured_quality_overrides_published(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(
            llama3_8b,
            h100,
            formats=["gguf-Q4_K_M"],
            measured={"GGUF-q4_k_m": {"perplexity_increase_pct": 0.5}},
        )
    )
    assert report.results[0].expected_quality_loss["kind"] == "measured"


def test_api_comparison_needs_a_known_api_price(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    with pytest.raises(PlanError, match="api_price_id"):
        plan(_request(llama3_8b, h100, api_price_id="nope-api"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"context_tokens": 0}, "context_tokens"),
        ({"context_tokens": 20_000_000}, "context_tokens"),
        ({"concurrency": 0}, "concurrency"),
        ({"engine": "tgi"}, "engine"),
        ({"gpus": 3}, "gpus"),
        ({"utilization": 0}, "utilization"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"formats": []}, "formats"),
        ({"formats": ["gguf-Q9_K"]}, "formats"),
        ({"kv_cache_dtype": "q8_0"}, "kv_cache_dtype"),  # not a vLLM cache type
        ({"prompt_tokens": 5000, "context_tokens": 4096}, "context_tokens"),
        ({"price_usd_per_hour": -1.0}, "price_usd_per_hour"),
        ({"max_ttft_s": float("nan")}, "max_ttft_s"),
    ],
)
def test_impossible_requests_raise_plan_error_naming_the_field(
    llama3_8b: ModelSpec, h100: GpuSpec, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(PlanError, match=field):
        plan(_request(llama3_8b, h100, **change))


def test_price_override_and_utilization_shape_the_cost(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    base = plan(_request(llama3_8b, h100, formats=["bf16"], utilization=1.0)).results[0]
    dear = plan(
        _request(
            llama3_8b, h100, formats=["bf16"], utilization=1.0, price_usd_per_hour=4.0
        )
    ).results[0]
    assert dear.cost_usd_per_hour == 2 * base.cost_usd_per_hour
    assert dear.cost_usd_per_million_tokens == pytest.approx(
        2 * base.cost_usd_per_million_tokens
    )


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    return []


_MODELS = load_models()
_GPUS = load_gpus()
_FORMATS = [f.id for f in list_formats()]


@settings(max_examples=120, deadline=None)
@given(
    model=st.sampled_from(_MODELS),
    gpu=st.sampled_from(_GPUS),
    formats=st.lists(st.sampled_from(_FORMATS), min_size=1, max_size=6, unique=True),
    engine=st.sampled_from(["vllm", "llama.cpp"]),
    context=st.sampled_from([512, 4096, 32768, 131072]),
    concurrency=st.integers(1, 64),
)
def test_no_catalog_plan_is_negative_or_nan(
    model: Any,
    gpu: GpuSpec,
    formats: list[str],
    engine: str,
    context: int,
    concurrency: int,
) -> None:
    report = plan(
        PlanRequest(
            model=model.spec,
            gpu=gpu,
            formats=formats,
            engine=engine,
            context_tokens=context,
            concurrency=concurrency,
            prompt_tokens=min(1024, context // 2),
            output_tokens=min(256, context // 4),
        )
    )
    for result in report.results:
        for n in _numbers(result.to_dict()):
            assert math.isfinite(n) and n >= 0, result.format
    json.dumps(report.to_dict())


@pytest.mark.slow
def test_every_catalog_model_format_and_gpu_plans_without_negative_or_nan() -> None:
    for model in _MODELS:
        for gpu in _GPUS:
            for engine in ("vllm", "llama.cpp"):
                report = plan(
                    PlanRequest(
                        model=model.spec, gpu=gpu, formats=_FORMATS, engine=engine
                    )
                )
                for result in report.results:
                    for n in _numbers(result.to_dict()):
                        assert math.isfinite(n) and n >= 0, (
                            model.id,
                            gpu.id,
                            result.format,
                        )


def _sentences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _sentences(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _sentences(v)]
    return []


@pytest.mark.parametrize("priced", [True, False])
def test_a_cpu_plan_speaks_of_the_server_not_a_gpu(
    llama3_8b: ModelSpec, priced: bool
) -> None:
    from planner.engine import get_gpu, gpu_spec_from_dict

    cpu = get_gpu("cpu-xeon-spr-2s")
    if not priced:  # no price: the recommendation counts device-seconds instead
        cpu = gpu_spec_from_dict({**cpu.to_dict(), "prices": [], "purchase": None})
    report = plan(
        _request(
            llama3_8b,
            cpu,
            formats=["gguf-Q4_K_M", "gguf-Q8_0"],
            engine="llama.cpp",
        )
    ).to_dict()
    text = [s for s in _sentences(report) if s not in (cpu.name, cpu.id)]
    assert report["recommendation"]["format"]
    assert not [s for s in text if "GPU" in s], [s for s in text if "GPU" in s]
    joined = " ".join(text)
    assert ("per server" in joined) if priced else ("server-seconds" in joined)
    assert "the server is rented" in joined and "-ngl 0" in joined


def test_a_gpu_plan_still_speaks_of_gpus(llama3_8b: ModelSpec, h100: GpuSpec) -> None:
    report = plan(_request(llama3_8b, h100, formats=["gguf-Q4_K_M"])).to_dict()
    joined = " ".join(_sentences(report))
    assert "the GPUs are rented" in joined and "per GPU" in joined


def test_a_capacity_search_on_cpus_says_server() -> None:
    from planner.engine import get_gpu, get_model, gpu_spec_from_dict
    from planner.engine.capacity import CapacityRequest, Workload, capacity_search

    cpu = get_gpu("cpu-xeon-spr-2s")
    unpriced = gpu_spec_from_dict(
        {**cpu.to_dict(), "id": "my-cpu", "prices": [], "purchase": None}
    )
    report = capacity_search(
        CapacityRequest(
            model=get_model("qwen3-0.6b").spec,
            gpus=[unpriced],
            formats=("gguf-Q4_K_M",),
            workload=Workload(requests_per_s=0.01, prompt_tokens=100, output_tokens=50),
        )
    )
    assert report.recommendation is not None
    assert report.recommendation.unit == "server"
    assert "fewest servers" in report.reasons[0]


def test_rejections_are_structured_with_a_code_and_the_numbers(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        _request(llama3_8b, h100, formats=["bf16", "gguf-Q2_K"], min_tokens_per_s=1e6)
    )
    rec = report.recommendation
    assert rec.format is None
    by_format = {r.format: r for r in rec.rejected}
    assert set(by_format) == {"bf16", "gguf-Q2_K"}
    speed = next(x for x in by_format["bf16"].reasons if x.code == "speed_below_limit")
    assert speed.limit == 1e6 and speed.value is not None and speed.value < 1e6
    assert speed.unit == "tokens/s"
    codes = {x.code for x in by_format["gguf-Q2_K"].reasons}
    assert "quality_above_limit" in codes
    # The sentence API users read is made of the same rejections.
    for r in rec.rejected:
        assert r.message in (rec.why_none or "")
    assert rec.to_dict()["rejected"][0]["reasons"][0]["code"]


def test_each_row_prices_owning_next_to_renting_with_the_cost_formulas(
    llama3_8b: ModelSpec,
) -> None:
    from planner.engine import estimate_speed, parse_format
    from planner.engine.cost import estimate_cost, owned_usd_per_hour

    gpus = {g.id: g for g in load_gpus()}
    l40s = gpus["l40s"]  # rented from 0.79 USD/h, sold for a purchase price
    row = plan(_request(llama3_8b, l40s, formats=["gguf-Q4_K_M"], gpus=1)).results[0]
    assert row.price_source.startswith(("runpod", "modal", "replicate"))
    owned_per_hour, owned_source = owned_usd_per_hour(l40s)
    assert owned_source.startswith("owned: ") and row.owned_price_source == owned_source
    assert owned_per_hour is not None
    assert row.owned_cost_usd_per_month == pytest.approx(owned_per_hour * 730)
    # Per 1M tokens: the rented figure scaled by owned/rented hourly prices (same
    # speed, same utilization), so the two columns compare like for like.
    assert row.cost_usd_per_hour and row.cost_usd_per_million_tokens
    assert row.owned_cost_usd_per_million_tokens == pytest.approx(
        row.cost_usd_per_million_tokens * owned_per_hour / row.cost_usd_per_hour
    )
    speed = estimate_speed(
        llama3_8b, parse_format("gguf-Q4_K_M"), l40s, engine="vllm", gpus=1,
        concurrency=1, prompt_tokens=1024, output_tokens=256,
    )  # fmt: skip
    by_formula = estimate_cost(
        speed, usd_per_gpu_hour=owned_per_hour, price_source=owned_source, gpus=1,
        utilization=0.5, prompt_tokens=1024, output_tokens=256,
    )  # fmt: skip
    assert row.owned_cost_usd_per_million_tokens == pytest.approx(
        by_formula.usd_per_million_tokens
    )

    # Dearer electricity: owning costs more, renting the same.
    dear = plan(
        _request(
            llama3_8b,
            l40s,
            formats=["gguf-Q4_K_M"],
            gpus=1,
            electricity_usd_per_kwh=0.5,
        )  # fmt: skip
    ).results[0]
    assert dear.cost_usd_per_month == row.cost_usd_per_month
    assert row.owned_cost_usd_per_month is not None
    assert dear.owned_cost_usd_per_month is not None
    # 350 W x PUE 1.3 x 730 h x (0.50 - 0.12) USD/kWh more a month.
    assert dear.owned_cost_usd_per_month - row.owned_cost_usd_per_month == (
        pytest.approx(0.350 * 1.3 * 730 * 0.38)
    )
    assert "at 0.5 USD/kWh" in dear.owned_price_source

    # A GPU the catalog lists no purchase price for: no owned figures, and why.
    a10 = plan(_request(llama3_8b, gpus["a10"], formats=["gguf-Q4_K_M"])).results[0]
    assert a10.cost_usd_per_month is not None
    assert a10.owned_cost_usd_per_month is None
    assert a10.owned_cost_usd_per_million_tokens is None
    assert a10.owned_price_source.startswith("cannot price owning")
    assert a10.to_dict()["owned_cost_usd_per_month"] is None


def test_an_electricity_price_above_the_limit_is_refused(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    with pytest.raises(PlanError, match="electricity_usd_per_kwh: at most 10"):
        plan(_request(llama3_8b, h100, electricity_usd_per_kwh=11.0))
