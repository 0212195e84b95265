"""Refitting from measurements: enough runs replace the default, with a label."""

from __future__ import annotations

import pytest

from planner.engine.calibration import calibrated, error_stats, fit_efficiency


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
