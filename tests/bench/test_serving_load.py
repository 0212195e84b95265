"""bench/serving_load.py: llama-server under a bounded load, against the latency model."""

from __future__ import annotations

from typing import Any

import pytest

from bench.serving_load import (
    SOLO_REQUESTS,
    LoadSettings,
    calibrated_points,
    compare,
    main,
    model_points,
    parse_args,
    percentile,
    serve_all,
    server_command,
    settings_from,
)
from planner.engine.device import WorkerFingerprint, device_from_fingerprint
from quantjobs.samples import sample_path

FINGERPRINT = {
    "cpu_model": "AMD EPYC",
    "cores_used": 2,
    "system_info": "AVX = 1 | AVX2 = 1 | AVX512 = 1",
    "memory_bandwidth_bytes_per_s": 28e9,
}


def test_each_slot_count_gets_its_own_unified_cache_sized_for_its_slots() -> None:
    s = LoadSettings(prompt_tokens=128, output_tokens=32)
    assert s.context_per_slot == 256
    cmd = server_command("llama-server", "m.gguf", slots=4, port=8123, s=s)
    joined = " ".join(cmd)
    assert "-np 4" in joined and "--kv-unified" in cmd
    assert "-c 1024" in joined  # 4 slots x 256 tokens
    assert "-ngl 0" in joined and "--cache-ram 0" in joined
    assert "--host 127.0.0.1" in joined and "--port 8123" in joined


def test_request_lengths_vary_around_the_means_within_the_spread() -> None:
    import numpy as np

    s = LoadSettings(prompt_tokens=128, output_tokens=32, length_spread=0.5)
    rng = np.random.default_rng(0)
    drawn = [s.lengths(rng) for _ in range(2000)]
    prompts, outputs = zip(*drawn, strict=True)
    assert min(prompts) == 64 and max(prompts) == 192
    assert min(outputs) == 16 and max(outputs) == 48
    assert np.mean(prompts) == pytest.approx(128, rel=0.03)
    assert np.mean(outputs) == pytest.approx(32, rel=0.03)
    # The KV cache of a slot holds the longest request.
    assert s.context_per_slot == 256
    equal = LoadSettings(prompt_tokens=128, output_tokens=32, length_spread=0.0)
    assert {equal.lengths(rng) for _ in range(20)} == {(128, 32)}
    # Short outputs keep the two tokens a time per output token needs.
    short = LoadSettings(prompt_tokens=4, output_tokens=2, length_spread=0.9)
    assert min(short.lengths(rng)[1] for _ in range(200)) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompt", "0"], "--prompt must be between"),
        (["--output", "1"], "--output must be between"),
        (["--requests", "0"], "--requests must be between"),
        (["--slots", "1,0"], "--slots must list"),
        (["--slots", "one"], "comma-separated"),
        (["--spread", "1"], "--spread must be between"),
    ],
)
def test_settings_that_cannot_be_measured_are_refused(
    argv: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from(parse_args(argv))


def test_a_refused_setting_exits_2_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--slots", "0"]) == 2
    assert "--slots must list" in capsys.readouterr().err


def test_check_prints_one_server_per_slot_count_and_runs_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--check", "--slots", "1,8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("-np 1 " in line for line in out)
    assert any("-np 8 " in line for line in out)


def test_nearest_rank_percentile() -> None:
    values = [float(i) for i in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([3.0], 95) == 3.0


def test_the_model_batches_slots_and_the_error_is_relative_to_the_measurement() -> None:
    device = device_from_fingerprint(WorkerFingerprint.from_dict(FINGERPRINT))
    s = LoadSettings()
    model = model_points(device, s)
    assert list(model) == [1, 2, 4, 8]
    # More slots: each token and each first token wait longer.
    assert model[8]["tpot_mean_s"] > model[1]["tpot_mean_s"]
    assert model[8]["ttft_mean_s"] > model[1]["ttft_mean_s"]
    measured = [
        {"slots": n, "requests": 4, **{k: v * 2 for k, v in model[n].items()}}
        for n in model
    ]
    rows = compare(measured, model)
    assert all(r["error_tpot_mean_s_pct"] == pytest.approx(-50.0) for r in rows)


def test_the_model_is_held_at_the_lengths_really_sent_and_waits_a_whole_step() -> None:
    from planner.engine import get_model, parse_format
    from planner.engine.latency import load_point, step_model

    device = device_from_fingerprint(WorkerFingerprint.from_dict(FINGERPRINT))
    s = LoadSettings()
    nominal = model_points(device, s)
    sent = model_points(device, s, lengths={1: (64.4, 16.2), 4: (128.0, 32.0)})
    assert sent[1]["ttft_mean_s"] < nominal[1]["ttft_mean_s"]
    assert sent[4] == nominal[4]
    assert sent[8] == nominal[8]  # no lengths for it: the settings' means
    # A closed-loop client waits the whole step in flight, a Poisson one half.
    m = step_model(
        get_model("smollm2-135m-instruct").spec,
        parse_format("gguf-Q4_1"),
        device,
        engine="llama.cpp",
        gpus=1,
    )
    poisson = load_point(m, concurrency=4, prompt_tokens=128, output_tokens=32)
    assert nominal[4]["ttft_mean_s"] > poisson.ttft_s
    assert nominal[4]["tpot_mean_s"] == pytest.approx(poisson.tpot_s)


def test_every_slot_count_is_calibrated_on_the_solo_requests_of_all_servers() -> None:
    device = device_from_fingerprint(WorkerFingerprint.from_dict(FINGERPRINT))
    s = LoadSettings()
    model = model_points(device, s)
    solo_model = model_points(device, LoadSettings(slots=(1,)))[1]

    def row(n: int, prompt_x: float, decode_x: float, solo: int = 6) -> dict[str, Any]:
        # A server whose solo requests measured this much slower than the model.
        return {
            "slots": n,
            "requests": 8,
            "prompt_tokens_mean": 128.0,
            "output_tokens_mean": 32.0,
            **{k: 1.0 for k in model[n]},
            "solo": {
                "requests": solo,
                "prompt_tokens_mean": 128.0,
                "output_tokens_mean": 32.0,
                "ttft_mean_s": solo_model["ttft_mean_s"] * prompt_x,
                "tpot_mean_s": solo_model["tpot_mean_s"] * decode_x,
            },
        }

    same = [row(1, 1.5, 1.2), row(4, 1.5, 1.2), row(8, 1.5, 1.2)]
    points, scales, pooled = calibrated_points(device, s, same)
    assert scales[4] == pytest.approx((1.5, 1.2))
    assert pooled == pytest.approx((1.5, 1.2))
    # One slot calibrated on solo requests is those requests.
    assert points[1]["ttft_mean_s"] == pytest.approx(
        solo_model["ttft_mean_s"] * 1.5, rel=0.02
    )
    assert points[1]["tpot_mean_s"] == pytest.approx(
        solo_model["tpot_mean_s"] * 1.2, rel=0.02
    )
    for n in (4, 8):
        assert points[n]["ttft_mean_s"] > model[n]["ttft_mean_s"]
        assert points[n]["tpot_mean_s"] > model[n]["tpot_mean_s"]
    # Servers that disagree are pooled, weighted by their solo requests, and every
    # slot count uses the pooled factors; a row without solo requests is still
    # calibrated with them.
    mixed = [
        row(1, 1.0, 1.0, solo=2),
        row(4, 2.0, 1.6, solo=6),
        {**row(8, 9, 9), "solo": None},
    ]
    points, scales, pooled = calibrated_points(device, s, mixed)
    assert set(scales) == {1, 4}
    assert pooled == pytest.approx((1.75, 1.45))
    assert set(points) == {1, 4, 8}
    assert points[1]["tpot_mean_s"] == pytest.approx(
        solo_model["tpot_mean_s"] * 1.45, rel=0.02
    )
    # No solo requests anywhere: nothing to calibrate on, nothing compared.
    points, scales, pooled = calibrated_points(device, s, [{**same[0], "solo": None}])
    assert (points, scales, pooled) == ({}, {}, (1.0, 1.0))
    assert compare(same, points) == []


@pytest.mark.slow
def test_llama_server_serves_every_slot_count_and_reports_what_clients_saw() -> None:
    from tests.llama_tools import ensure_llama_tool

    binary = ensure_llama_tool("llama-server")
    s = LoadSettings(
        prompt_tokens=16, output_tokens=8, requests_per_client=2, slots=(1, 2)
    )
    measured = serve_all(binary, sample_path("smollm2-135m-instruct-q4_1"), s)
    assert [m["slots"] for m in measured] == [1, 2]
    for m in measured:
        # Each client's first request is ramp-up, kept out of the figures.
        assert m["requests"] == m["ramp_up_requests"] == m["slots"]
        # Before its load, each server answered requests one at a time.
        assert m["solo"]["requests"] == SOLO_REQUESTS - 1
        assert m["solo"]["ttft_mean_s"] > 0 and m["solo"]["tpot_mean_s"] > 0
        assert 0 < m["ttft_mean_s"] <= m["ttft_p95_s"]
        assert 0 < m["tpot_mean_s"] <= m["tpot_p95_s"]
        # The server's own per-token time agrees with what the clients saw.
        assert m["server_tpot_mean_s"] == pytest.approx(m["tpot_mean_s"], rel=0.5)
