"""Quality loss: published entries with sources, nearest-group fallback, measured values."""

from __future__ import annotations

import pytest

from planner.engine import (
    expected_quality_loss,
    list_formats,
    measured_quality,
    quality_table,
)


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
