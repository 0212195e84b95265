"""The accuracy-aware search's pure rules: bar, candidate order, verdicts, stop rule."""

from __future__ import annotations

import math

import pytest

from planner.engine.search import (
    EXACT_MATCH_DROP_POINTS,
    KL_DIVERGENCE,
    PERPLEXITY_CHANGE_PCT,
    SearchError,
    Trial,
    judge,
    loss_from_metrics,
    order_candidates,
    outcome,
    search_bar,
    should_stop,
)

SIZES = {
    "gguf-Q8_0": 145e6,
    "gguf-Q6_K": 138e6,
    "gguf-Q4_K_M": 105e6,
    "gguf-Q2_K": 88e6,
}


def test_candidates_are_ordered_smallest_first_whatever_order_they_came_in() -> None:
    given = ["gguf-Q8_0", "gguf-Q4_K_M", "gguf-Q6_K", "gguf-Q2_K", "gguf-Q4_K_M"]
    assert order_candidates(given, SIZES.get) == [
        "gguf-Q2_K",
        "gguf-Q4_K_M",
        "gguf-Q6_K",
        "gguf-Q8_0",
    ]


def test_a_candidate_without_a_size_goes_after_the_sized_ones_in_its_given_order() -> (
    None
):
    sizes = {"b": 2.0, "d": 1.0}
    assert order_candidates(["a", "b", "c", "d"], sizes.get) == ["d", "b", "a", "c"]


def test_equal_sizes_keep_the_order_given() -> None:
    assert order_candidates(["x", "y"], lambda _f: 1.0) == ["x", "y"]


@pytest.mark.parametrize(
    ("metric", "value", "fragment"),
    [
        (PERPLEXITY_CHANGE_PCT, -1, "cannot be negative"),
        (PERPLEXITY_CHANGE_PCT, 250, "above 100%"),
        (KL_DIVERGENCE, 9, "above 5 nats"),
        (EXACT_MATCH_DROP_POINTS, 101, "above 100 points"),
        (PERPLEXITY_CHANGE_PCT, math.nan, "finite"),
        (PERPLEXITY_CHANGE_PCT, math.inf, "finite"),
        (PERPLEXITY_CHANGE_PCT, "three", "as a number"),
        ("accuracy", 3, "Unknown search metric"),
    ],
)
def test_a_negative_absurd_or_unknown_bar_is_refused_with_what_to_change(
    metric: str, value: object, fragment: str
) -> None:
    with pytest.raises(SearchError, match=fragment):
        search_bar(metric, value)


def test_a_bar_of_zero_is_allowed_and_labelled() -> None:
    assert search_bar(EXACT_MATCH_DROP_POINTS, 0).label == "exact-match drop ≤ 0 points"
    assert search_bar(PERPLEXITY_CHANGE_PCT, "3").label == "perplexity change ≤ 3%"


def test_a_value_at_the_bar_passes_and_above_it_fails_with_both_numbers() -> None:
    bar = search_bar(PERPLEXITY_CHANGE_PCT, 3)
    at = judge(bar, "gguf-Q6_K", 3.0)
    above = judge(bar, "gguf-Q4_K_M", 7.25)
    assert at.passed and at.reason == "passed: perplexity change 3% ≤ 3%"
    assert not above.passed and above.reason == "failed: perplexity change 7.25% > 3%"


def test_a_missing_measurement_fails_and_says_so() -> None:
    bar = search_bar(EXACT_MATCH_DROP_POINTS, 5)
    trial = judge(bar, "gguf-Q4_K_M", None)
    assert not trial.passed and trial.value is None
    assert "no prompt/answer score was measured" in trial.reason


def test_the_search_stops_at_the_first_pass_only() -> None:
    bar = search_bar(KL_DIVERGENCE, 0.05)
    trials = [judge(bar, "gguf-Q2_K", 0.4)]
    assert not should_stop(trials)
    trials.append(judge(bar, "gguf-Q4_K_M", 0.02))
    assert should_stop(trials)


def test_the_outcome_names_the_answer_and_how_far_the_search_went() -> None:
    bar = search_bar(PERPLEXITY_CHANGE_PCT, 3)
    trials = [judge(bar, "gguf-Q4_K_M", 8.0), judge(bar, "gguf-Q6_K", 1.5)]
    ended = outcome(bar, trials, candidates=3)
    assert ended.answer == "gguf-Q6_K" and ended.closest_value == 1.5
    assert ended.summary == (
        "gguf-Q6_K is the smallest format within perplexity change ≤ 3%: 1.5% "
        "measured. Tried 2 of 3 candidates smallest first; 1 smaller one failed."
    )


def test_no_format_meeting_the_bar_names_the_closest_with_its_value() -> None:
    bar = search_bar(PERPLEXITY_CHANGE_PCT, 0.01)
    trials = [
        judge(bar, "gguf-Q4_K_M", 8.0),
        judge(bar, "gguf-Q8_0", 0.4),
        Trial("gguf-Q6_K", None, False, "failed: no perplexity change was measured"),
    ]
    ended = outcome(bar, trials, candidates=3)
    assert ended.answer is None and ended.closest == "gguf-Q8_0"
    assert ended.summary == (
        "No format meets perplexity change ≤ 0.01%: the closest of the 3 tried is "
        "gguf-Q8_0 at 0.4%."
    )


def test_losses_are_read_from_a_results_metrics() -> None:
    metrics = {
        "perplexity": 10.3,
        "base_perplexity": 10.0,
        "kl_divergence": 0.0123,
        "task": {"exact_match_drop": {"points": 12.5}},
    }
    assert loss_from_metrics(PERPLEXITY_CHANGE_PCT, metrics) == pytest.approx(3.0)
    assert loss_from_metrics(KL_DIVERGENCE, metrics) == 0.0123
    assert loss_from_metrics(EXACT_MATCH_DROP_POINTS, metrics) == 12.5
    assert loss_from_metrics(EXACT_MATCH_DROP_POINTS, {"task": None}) is None
    assert loss_from_metrics(PERPLEXITY_CHANGE_PCT, {"perplexity": 3.0}) is None
