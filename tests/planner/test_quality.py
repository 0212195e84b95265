"""Quality loss: published entries with sources, nearest-group fallback, measured values."""

from __future__ import annotations

import pytest

from planner.engine import (
    GpuSpec,
    ModelSpec,
    PlanRequest,
    expected_quality_loss,
    list_formats,
    measured_quality,
    plan,
    quality_table,
)
from planner.engine.quality import quality_entries, quality_family


def test_every_listed_format_has_a_sourced_entry() -> None:
    table = quality_table()
    for f in list_formats():
        assert f.id in table, f.id
        assert table[f.id]["source"]


def test_q4_k_m_comes_from_llama_cpps_llama_3_8b_scoreboard() -> None:
    q = expected_quality_loss("gguf-Q4_K_M")
    assert q["kind"] == "published-estimate"
    assert q["perplexity_increase_pct"] == pytest.approx(2.816, abs=0.01)
    assert q["kl_divergence"] == pytest.approx(0.031273)
    assert "llama.cpp" in q["source"]


def test_losses_grow_as_bits_shrink() -> None:
    order = [
        "gguf-Q8_0",
        "gguf-Q6_K",
        "gguf-Q5_K_M",
        "gguf-Q4_K_M",
        "gguf-Q3_K_M",
        "gguf-Q2_K",
        "gguf-IQ1_S",
    ]
    losses = [expected_quality_loss(f)["perplexity_increase_pct"] for f in order]
    assert losses == sorted(losses)


def test_unlisted_group_sizes_use_the_nearest_entry() -> None:
    q = expected_quality_loss("rtn-int4-g256")
    assert "nearest group size rtn-int4-g128" in q["source"]


def test_measured_values_replace_the_published_ones() -> None:
    q = expected_quality_loss(
        "gguf-Q4_K_M", measured={"perplexity_increase_pct": 1.5, "source": "our eval"}
    )
    assert q == {
        "perplexity_increase_pct": 1.5,
        "kl_divergence": None,
        "source": "our eval",
        "kind": "measured",
    }
    assert measured_quality(perplexity_increase_pct=2, kl_divergence=0.1)["kind"] == (
        "measured"
    )
    with pytest.raises(ValueError):
        measured_quality(perplexity_increase_pct="a lot")


def test_ternary_types_have_no_estimate_for_ordinary_models() -> None:
    assert expected_quality_loss("gguf-TQ1_0")["perplexity_increase_pct"] is None


# -- Priors by model size and family (issue 13 point 4) --

LLAMA_3_8B = 8_030_261_248
LLAMA_3_70B = 70_553_706_496
LLAMA_2_13B = 13_015_864_320
LLAMA_2_70B = 68_976_648_192


def test_every_sized_entry_names_its_model_family_size_and_source() -> None:
    for fid in ("gguf-Q4_K_M", "gguf-Q4_0", "awq-4bit-g128", "gptq-4bit-g128"):
        entries = quality_entries(fid)
        assert entries, fid
        for e in entries:
            assert e["source"] and e["model"], e
            assert e.get("family") in {"llama-1", "llama-2", "llama-3"}, e
            assert e.get("parameters", 0) > 1e9, e


def test_within_a_family_published_sizes_are_used_as_published() -> None:
    awq13 = expected_quality_loss(
        "awq-4bit-g128", family="llama-2", parameters=LLAMA_2_13B
    )
    assert awq13["perplexity_increase_pct"] == pytest.approx(
        (4.97 - 4.88) / 4.88 * 100, abs=1e-3
    )
    assert "Llama-2-13B" in awq13["source"] and "2306.00978" in awq13["source"]
    awq70 = expected_quality_loss(
        "awq-4bit-g128", family="llama-2", parameters=LLAMA_2_70B
    )
    assert awq70["perplexity_increase_pct"] == pytest.approx(
        (3.41 - 3.32) / 3.32 * 100, abs=1e-3
    )
    assert "Llama-2-70B" in awq70["source"]


def test_between_published_sizes_it_interpolates_by_log_parameters() -> None:
    low = expected_quality_loss("gguf-Q4_0", family="llama-1", parameters=6_738_415_616)
    high = expected_quality_loss(
        "gguf-Q4_0", family="llama-1", parameters=13_015_864_320
    )
    geometric_mean = int((6_738_415_616 * 13_015_864_320) ** 0.5)
    mid = expected_quality_loss(
        "gguf-Q4_0", family="llama-1", parameters=geometric_mean
    )
    assert low["perplexity_increase_pct"] == pytest.approx(4.231)
    assert high["perplexity_increase_pct"] == pytest.approx(2.507)
    assert mid["perplexity_increase_pct"] == pytest.approx(
        (4.231 + 2.507) / 2, abs=1e-3
    )
    assert (
        "interpolated by log(parameters) between LLaMA-7B and LLaMA-13B"
        in mid["source"]
    )
    assert mid["basis"] == "llama-1, interpolated"


def test_a_70b_is_not_silently_given_an_8b_figure() -> None:
    q = expected_quality_loss("gguf-Q4_K_M", family="llama-3", parameters=LLAMA_3_70B)
    assert q["perplexity_increase_pct"] == pytest.approx(2.816)  # the only one
    assert "no published figure near 70.6B in this family" in q["source"]
    assert q["basis"] == "llama-3, nearest size"
    at_8b = expected_quality_loss(
        "gguf-Q4_K_M", family="llama-3", parameters=LLAMA_3_8B
    )
    assert "no published figure" not in at_8b["source"]
    assert at_8b["basis"] == "llama-3"


def test_a_family_with_no_figures_borrows_another_and_says_so() -> None:
    q = expected_quality_loss("gguf-Q4_K_M", family="qwen2", parameters=7_615_616_512)
    assert q["kind"] == "published-estimate"
    assert (
        "borrowed from llama-3: no published figure for the qwen2 family" in q["source"]
    )
    assert q["basis"].endswith("other family")
    llama2 = expected_quality_loss(
        "awq-4bit-g128", family="qwen2", parameters=LLAMA_2_70B
    )
    assert "borrowed from llama-2" in llama2["source"]


def test_the_family_comes_from_the_models_name() -> None:
    assert quality_family("llama-3-70b") == "llama-3"
    assert quality_family("meta-llama/Llama-3.1-8B") == "llama-3"
    assert quality_family("llama-2-13b") == "llama-2"
    assert quality_family("qwen2.5-7b", architecture="qwen2") == "qwen2"
    assert quality_family("smollm2-135m", architecture="llama") == "llama"


def test_a_plan_for_a_70b_uses_its_own_size_and_family(
    llama3_70b: ModelSpec, smollm2: ModelSpec, h100: GpuSpec
) -> None:
    report = plan(
        PlanRequest(
            model=llama3_70b, gpu=h100, formats=["awq-4bit-g128", "gguf-Q4_K_M"]
        )
    )
    awq, q4 = report.results
    # Llama 3 has no AWQ figure: Llama 2's, at the nearest size (70B), labelled.
    assert awq.expected_quality_loss["perplexity_increase_pct"] == pytest.approx(
        2.711, abs=1e-3
    )
    assert "borrowed from llama-2" in awq.sources["quality"]
    assert "Llama-2-70B" in awq.sources["quality"]
    assert "70.6B" in q4.sources["quality"]
    small = plan(PlanRequest(model=smollm2, gpu=h100, formats=["awq-4bit-g128"]))
    assert "Llama-2-7B" in small.results[0].sources["quality"]


def test_the_perplexity_change_is_one_rule_and_never_divides_by_zero() -> None:
    from planner.engine.quality import perplexity_change_pct

    assert perplexity_change_pct(10.5, 10.0) == pytest.approx(5.0)
    assert perplexity_change_pct(9.0, 10.0) == pytest.approx(-10.0)
    assert perplexity_change_pct(10.123456, 10.0, ndigits=3) == 1.235
    assert perplexity_change_pct(None, 10.0) is None
    assert perplexity_change_pct(10.0, 0.0) is None


def test_the_quality_limit_defaults_and_an_unknown_loss_is_not_over_it() -> None:
    from planner.engine.quality import (
        DEFAULT_MAX_QUALITY_LOSS_PCT,
        exceeds_quality_limit,
        quality_limit_pct,
    )

    assert quality_limit_pct(None) == DEFAULT_MAX_QUALITY_LOSS_PCT
    assert quality_limit_pct(1.5) == 1.5
    assert exceeds_quality_limit(DEFAULT_MAX_QUALITY_LOSS_PCT + 0.1, None)
    assert not exceeds_quality_limit(DEFAULT_MAX_QUALITY_LOSS_PCT, None)
    assert exceeds_quality_limit(2.0, 1.5)
    assert not exceeds_quality_limit(None, 0.0)
