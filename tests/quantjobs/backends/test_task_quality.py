"""Task quality: exact vs normalised match, the paired drop and its interval."""

from __future__ import annotations

import pytest

from quantjobs.backends.task_quality import QaAnswer, normalise_answer, summarise


def answers(outputs: list[str], expected: list[str]) -> list[QaAnswer]:
    return [
        QaAnswer(i, f"q{i}", want, got)
        for i, (got, want) in enumerate(zip(outputs, expected, strict=True))
    ]


def test_exact_match_is_strict_and_normalised_match_forgives_case_and_punctuation() -> (
    None
):
    (a,) = answers(["  paris. "], ["Paris"])
    assert not a.exact and a.normalised
    (b,) = answers(["Paris"], ["Paris"])
    assert b.exact and b.normalised
    assert normalise_answer("New  York") == "new york"
    assert normalise_answer("4") != normalise_answer("40")
    skipped = QaAnswer(0, "q", "Paris", "Paris", skipped=True)
    assert not skipped.exact and not skipped.normalised


def test_the_drop_is_paired_per_question_with_a_95_percent_interval() -> None:
    expected = ["a"] * 10
    reference = answers(["a"] * 9 + ["x"], expected)  # 90%
    model = answers(["a"] * 7 + ["x"] * 3, expected)  # 70%
    task = summarise(reference, model)
    assert task["questions"] == 10
    assert task["reference_normalised_match"] == pytest.approx(0.9)
    assert task["normalised_match"] == pytest.approx(0.7)
    drop = task["normalised_match_drop"]
    assert drop["points"] == pytest.approx(20.0)
    assert drop["ci95_low_points"] < 20.0 < drop["ci95_high_points"]
    # 2 of 10 questions flip: sd of the differences is 0.42, half-width ~26 points.
    assert drop["ci95_high_points"] - drop["ci95_low_points"] == pytest.approx(
        2 * 1.959964 * 100 * (0.1777777 / 10) ** 0.5, rel=1e-3
    )
    assert task["normalised_match_relative_pct"] == pytest.approx(-22.222, rel=1e-3)


def test_identical_answers_have_no_drop_and_a_zero_width_interval() -> None:
    expected = ["a", "b", "c"]
    same = answers(["a", "x", "c"], expected)
    task = summarise(same, same)
    assert task["normalised_match_drop"] == {
        "points": 0.0,
        "ci95_low_points": 0.0,
        "ci95_high_points": 0.0,
    }


def test_every_question_is_kept_with_both_models_outputs() -> None:
    expected = ["Paris", "4"]
    task = summarise(
        answers(["Paris", "5"], expected), answers(["paris", "4"], expected)
    )
    rows = task["rows"]
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["output"] == "paris" and rows[0]["reference_output"] == "Paris"
    assert rows[0]["normalised"] and not rows[0]["exact"]
    assert rows[1]["reference_normalised"] is False and rows[1]["exact"] is True
