"""The serving measurement: a fresh llama.cpp process, llama-bench's pp/tg runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.gguf.run_clock import RunClock, TimedRun
from quantjobs.backends.gguf.serving import (
    SPREAD_WARNING_PCT,
    ServingMeasurement,
    ServingRequest,
    SpeedSamples,
    measure_serving,
)
from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"


def small(**overrides: object) -> ServingRequest:
    fields: dict[str, object] = {
        "model_path": sample_path(SAMPLE),
        "context_tokens": 256,
        "threads": 2,
        "prompt_tokens": 64,
        "generation_tokens": 16,
        "repetitions": 3,
    }
    fields.update(overrides)
    return ServingRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def measured() -> ServingMeasurement:
    return measure_serving(small())


def test_memory_is_the_peak_of_a_fresh_process_not_this_one(
    measured: ServingMeasurement,
) -> None:
    assert measured.pid != os.getpid()
    assert measured.context_tokens == 256
    # The sample's weights (~87 MB) are in it, and a pure-Python process is not.
    assert measured.peak_memory_bytes > sample_path(SAMPLE).stat().st_size
    # The kernel syncs per-thread RSS counters lazily: VmHWM can read a few
    # hundred KiB lower later. The bench runs add nothing beyond that.
    assert measured.peak_memory_after_bench_bytes == pytest.approx(
        measured.peak_memory_bytes, rel=0.02
    )


def test_speed_has_every_repetition_and_a_median_inside_the_spread(
    measured: ServingMeasurement,
) -> None:
    for samples, test in ((measured.prompt, "pp64"), (measured.generation, "tg16")):
        assert samples.test == test
        runs = samples.runs_tokens_per_s
        assert len(runs) == 3 and all(r > 0 for r in runs)
        assert min(runs) <= samples.median <= max(runs)
        summary = samples.summary()
        assert summary["repetitions"] == 3
        assert summary["min_tokens_per_s"] <= summary["median_tokens_per_s"]
        assert summary["median_tokens_per_s"] <= summary["max_tokens_per_s"]


def test_the_conditions_are_recorded(measured: ServingMeasurement) -> None:
    assert measured.threads == 2
    assert len(measured.load_average_before) == 3
    assert len(measured.load_average_after) == 3
    assert "AVX" in measured.system_info  # llama_print_system_info() of the build
    assert measured.cpu_model
    again = ServingMeasurement.from_dict(measured.to_dict())
    assert again == measured


def test_a_prompt_test_longer_than_the_context_gets_its_own_context() -> None:
    measured = measure_serving(small(context_tokens=64, prompt_tokens=128))
    assert measured.context_tokens == 64
    assert measured.bench_context_tokens == 128
    assert any("128-token context" in note for note in measured.notes)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"repetitions": 0}, "bench_repetitions must be between 1 and 50"),
        ({"prompt_tokens": 0}, "bench_prompt_tokens must be between 1 and 8192"),
        ({"generation_tokens": 5000}, "bench_generation_tokens must be between"),
    ],
)
def test_settings_that_cannot_be_measured_are_refused(
    overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(BackendError, match=reason):
        measure_serving(small(**overrides))


def test_a_file_llama_cpp_cannot_load_fails_with_its_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"NOTAGGUF" * 64)
    with pytest.raises(
        BackendError, match=r"serving measurement of bogus.gguf failed: .*bogus.gguf"
    ):
        measure_serving(small(model_path=bogus))


def test_each_run_records_the_cpu_share_it_got(measured: ServingMeasurement) -> None:
    for samples in (measured.prompt, measured.generation):
        shares = samples.runs_cpu_share
        assert len(shares) == len(samples.runs_tokens_per_s) == 3
        # CPU seconds over wall x threads: positive, and 2 threads cannot use
        # much more than 2 cores' time.
        assert all(0 < share < 1.2 for share in shares)
        summary = samples.summary()
        contended = sum(1 for s in shares if s < 0.9)
        assert summary["contended_runs"] == contended
    assert measured.priority == "normal"


def test_real_time_priority_is_used_when_asked_for_or_its_refusal_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUANTPLAN_SERVING_PRIORITY", "realtime")
    measured = measure_serving(small(prompt_tokens=16, generation_tokens=4))
    if measured.priority == "realtime":
        assert not any("refused" in note for note in measured.notes)
    else:  # no permission (not root, no CAP_SYS_NICE): measured as usual, said so
        assert measured.priority == "normal"
        assert any("real-time priority refused" in note for note in measured.notes)


def test_each_run_records_steal_and_the_wait_for_a_core(
    measured: ServingMeasurement,
) -> None:
    for samples in (measured.prompt, measured.generation):
        n = len(samples.runs_tokens_per_s)
        assert len(samples.runs_steal_share) == len(samples.runs_wait_share) == n
        assert all(0 <= share <= 1 for share in samples.runs_steal_share)
        # Two threads waiting for the whole run would read 1.
        assert all(0 <= share <= 1.05 for share in samples.runs_wait_share)
        summary = samples.summary()
        assert len(summary["runs_steal_share"]) == n
        assert len(summary["runs_wait_share"]) == n


def test_a_spread_measurement_says_so_in_its_notes(
    measured: ServingMeasurement,
) -> None:
    # Whatever this machine's load made of the runs, the notes agree with them.
    for samples in (measured.prompt, measured.generation):
        warning = samples.spread_warning()
        assert (warning is not None) == (samples.spread_pct > SPREAD_WARNING_PCT)
        if warning:
            assert warning in measured.notes
        assert samples.summary()["spread_warning"] == warning


def test_runs_that_agree_carry_no_warning() -> None:
    samples = SpeedSamples("tg128", 128, (100.0, 104.0, 97.0, 101.0, 99.0))
    assert samples.spread_pct == pytest.approx(7.0)
    assert samples.spread_warning() is None
    assert samples.summary()["spread_warning"] is None


def _rebuilt(test: str, tokens: int, summary: dict[str, Any]) -> SpeedSamples:
    """The samples as the job rebuilds them from the serving process's summary."""
    keys = (
        "runs_tokens_per_s",
        "runs_cpu_share",
        "runs_steal_share",
        "runs_wait_share",
    )
    return SpeedSamples(test, tokens, *(tuple(summary[k]) for k in keys))


def test_runs_spread_past_ten_percent_are_flagged_with_what_was_measured() -> None:
    samples = SpeedSamples(
        "tg128",
        128,
        (94.8, 112.6, 101.0, 99.0, 100.0),
        runs_cpu_share=(0.99, 0.98, 0.99, 0.99, 0.97),
        runs_steal_share=(0.0, 0.052, 0.01, 0.0, 0.0),
        runs_wait_share=(0.001, 0.0, 0.02, 0.0, 0.0),
    )
    # Every run is kept: the median is of all five, the spread is of all five.
    assert samples.median == 100.0
    assert samples.spread_pct == pytest.approx(17.8)
    warning = samples.spread_warning()
    assert warning is not None
    assert warning.startswith("tg128 is unreliable: its 5 runs spread 18%")
    assert "94.8-112.6 tok/s" in warning
    assert "steal up to 5.2%" in warning
    assert "waiting for a core up to 2.0%" in warning
    assert "CPU share down to 0.97" in warning
    summary = samples.summary()
    assert summary["spread_pct"] == pytest.approx(17.8)
    assert summary["runs_steal_share"] == [0.0, 0.052, 0.01, 0.0, 0.0]
    again = _rebuilt("tg128", 128, summary)
    assert again.spread_warning() == warning


def test_the_warning_in_the_notes_survives_the_trip_from_the_serving_process() -> None:
    # Values whose rounding to 3-4 places would print other figures: the serving
    # process writes its notes with the full values, the job reads them back.
    samples = SpeedSamples(
        "tg16",
        16,
        (94.81249, 112.6, 101.0),
        runs_cpu_share=(0.99, 0.97549, 0.99),
        runs_steal_share=(0.0, 0.052549, 0.0),
        runs_wait_share=(0.0, 0.000349, 0.0),
    )
    warning = samples.spread_warning()
    assert warning is not None and "steal up to 5.3%" in warning
    summary = json.loads(json.dumps(samples.summary()))
    again = _rebuilt("tg16", 16, summary)
    assert again == samples
    assert again.spread_warning() == warning


def test_a_run_reads_its_shares_from_the_clocks() -> None:
    start = RunClock(
        wall_s=10.0, cpu_s=3.0, steal_ticks=50, total_ticks=1000, wait_ns=0
    )
    end = RunClock(
        wall_s=12.0, cpu_s=6.6, steal_ticks=70, total_ticks=1400, wait_ns=200_000_000
    )
    run = TimedRun.between(start, end, threads=2)
    assert run.seconds == 2.0
    assert run.cpu_share == pytest.approx(0.9)  # 3.6 CPU s of 2 s x 2 threads
    assert run.steal_share == pytest.approx(0.05)  # 20 of 400 ticks
    assert run.wait_share == pytest.approx(0.05)  # 0.2 s of 2 s x 2 threads


def test_the_clocks_are_read_from_this_machine() -> None:
    reading = RunClock.now()
    assert reading.total_ticks > 0  # /proc/stat
    assert 0 <= reading.steal_ticks <= reading.total_ticks
    assert reading.wait_ns >= 0
