"""Refitting from measurements: enough runs replace the default, with a label."""

from __future__ import annotations

from typing import Any

import pytest

from planner.engine import GpuSpec, ModelSpec, PlanRequest, plan
from planner.engine.calibration import (
    Efficiency,
    FormatMeasurement,
    SpeedCalibration,
    calibrated,
    error_stats,
    fit_efficiency,
    measurement_for,
    speed_calibration_for,
)


def test_too_few_runs_leave_the_roofline_default() -> None:
    assert fit_efficiency([0.8, 0.9]) is None
    value, label = calibrated(100.0, None)
    assert value == 100.0 and label.startswith("estimated")


def test_the_median_ratio_replaces_the_default_and_says_how_many_runs() -> None:
    eff = fit_efficiency([0.5, 0.6, 0.55, float("nan"), -1.0])
    assert eff is not None and eff.runs == 3
    assert eff.factor == pytest.approx(0.55)
    assert (eff.low, eff.high) == (0.5, 0.6)
    value, label = calibrated(200.0, eff)
    assert value == pytest.approx(110.0)
    assert label == "calibrated from 3 runs"


def test_error_stats_give_n_median_p90_and_the_worst_with_its_sign() -> None:
    stats = error_stats([1.0, -2.0, 3.0, -10.0, 0.5, 0.0, 1.5, 2.0, -1.0, 4.0])
    assert stats["n"] == 10
    assert stats["median_pct"] == pytest.approx(0.75)
    assert stats["p90_abs_pct"] == 4.0
    assert stats["worst_pct"] == -10.0
    assert error_stats([])["n"] == 0


# -- Plans and the ledger: the rule lives in the engine, fed plain dataclasses --

DEVICE = "AMD EPYC | 2 threads | avx2/avx512"


def _cal(quantity: str, factor: float, runs: int = 3, **kw: str) -> SpeedCalibration:
    fields = {
        "device": DEVICE,
        "engine": "llama.cpp on CPU",
        "format_family": "gguf",
        **kw,
    }
    return SpeedCalibration(
        quantity=quantity,
        efficiency=Efficiency(factor=factor, runs=runs, low=factor, high=factor),
        **fields,
    )


def test_only_the_same_device_engine_and_family_calibrate_a_row() -> None:
    cals = [
        _cal("generation_tokens_per_s", 0.5),
        _cal("generation_tokens_per_s", 0.9, device="another CPU"),
        _cal("generation_tokens_per_s", 0.7, format_family="awq"),
    ]
    found = speed_calibration_for(
        cals, device=DEVICE, engine="llama.cpp on CPU", format_family="gguf",
        quantity="generation_tokens_per_s",
    )  # fmt: skip
    assert found is not None and found.factor == 0.5
    for device, engine, family in (
        ("", "llama.cpp on CPU", "gguf"),  # a catalog device: never calibrated
        (DEVICE, "vllm", "gguf"),
        (DEVICE, "llama.cpp on CPU", "gptq"),
    ):
        assert (
            speed_calibration_for(
                cals,
                device=device,
                engine=engine,
                format_family=family,
                quantity="generation_tokens_per_s",
            )  # fmt: skip
            is None
        )
    few = [_cal("generation_tokens_per_s", 0.5, runs=2)]
    assert (
        speed_calibration_for(
            few,
            device=DEVICE,
            engine="llama.cpp on CPU",
            format_family="gguf",
            quantity="generation_tokens_per_s",
        )  # fmt: skip
        is None
    )


def test_a_measurement_of_one_model_never_stands_in_for_another() -> None:
    small = FormatMeasurement(
        model_id="smollm2-135m", format="gguf-Q4_K_M", source="your job 1",
        perplexity_increase_pct=9.0,
    )  # fmt: skip
    assert (
        measurement_for([small], model_id="llama-3-70b", format_id="gguf-Q4_K_M")
        is None
    )
    assert (
        measurement_for([small], model_id="smollm2-135m", format_id="gguf-Q8_0") is None
    )
    newer = FormatMeasurement(
        model_id="smollm2-135m", format="gguf-Q4_K_M", source="your job 2"
    )
    found = measurement_for(
        [small, newer], model_id="smollm2-135m", format_id="gguf-Q4_K_M"
    )
    assert found is newer


def test_a_plan_labels_every_row_and_applies_the_ledger(
    smollm2: ModelSpec, llama3_70b: ModelSpec, cpu_server: GpuSpec
) -> None:
    def request(model: ModelSpec, **kw: Any) -> PlanRequest:
        return PlanRequest(
            model=model, gpu=cpu_server, engine="llama.cpp", formats=["gguf-Q4_K_M"],
            context_tokens=512, prompt_tokens=256, output_tokens=128, **kw,
        )  # fmt: skip

    plain = plan(request(smollm2)).results[0]
    assert plain.sources["decode_tokens_per_s"] == (
        "estimated (roofline, default efficiency)"
    )
    assert plain.sources["quality"].startswith("estimated (published: ")
    assert plain.sources["artifact_bytes"].startswith("estimated")
    assert plain.sources["total_bytes_per_gpu"].startswith("estimated")
    assert plain.prompt_tokens_per_s > 0

    measured = FormatMeasurement(
        model_id="smollm2-135m", format="gguf-Q4_K_M", source="your job 7",
        perplexity_increase_pct=6.5, kl_divergence=0.05, artifact_bytes=105_000_000,
        memory_bytes=210_000_000, memory_context_tokens=512, device=DEVICE,
    )  # fmt: skip
    ledger = {
        "device_key": DEVICE,
        "measurements": [measured],
        "calibrations": [
            _cal("generation_tokens_per_s", 0.5),
            _cal("prompt_tokens_per_s", 0.25),
        ],
    }
    report = plan(request(smollm2, max_quality_loss_pct=10.0, **ledger))
    row = report.results[0]
    # The recommendation says where its quality and speed come from, too.
    assert report.recommendation.format == "gguf-Q4_K_M"
    reasons = " | ".join(report.recommendation.reasons)
    assert "measured perplexity increase 6.50% (your job 7)" in reasons
    assert "(calibrated from 3 runs)" in reasons
    assert row.decode_tokens_per_s == pytest.approx(0.5 * plain.decode_tokens_per_s)
    assert row.prompt_tokens_per_s == pytest.approx(0.25 * plain.prompt_tokens_per_s)
    assert row.ttft_s == pytest.approx(plain.ttft_s / 0.25)
    assert row.sources["decode_tokens_per_s"] == "calibrated from 3 runs"
    assert row.sources["prompt_tokens_per_s"] == "calibrated from 3 runs"
    assert row.expected_quality_loss["perplexity_increase_pct"] == 6.5
    assert row.sources["quality"] == "measured (your job 7)"
    assert row.artifact_bytes == 105_000_000
    assert row.sources["artifact_bytes"] == "measured (your job 7)"
    assert row.sources["total_bytes_per_gpu"] == "measured (your job 7, peak RSS)"
    # Cost follows the calibrated speed.
    if plain.cost_usd_per_million_tokens and row.cost_usd_per_million_tokens:
        assert row.cost_usd_per_million_tokens > plain.cost_usd_per_million_tokens

    # The 135M measurement does not touch the 70B's prior or its size.
    big = plan(request(llama3_70b, **ledger)).results[0]
    assert big.expected_quality_loss["kind"] == "published-estimate"
    assert big.sources["quality"].startswith("estimated (published: ")
    assert big.sources["artifact_bytes"].startswith("estimated")
    # ...but the device's speed fit applies to every model on it.
    assert big.sources["decode_tokens_per_s"] == "calibrated from 3 runs"
