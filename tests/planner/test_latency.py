"""The batched latency model: floors, all-reduce, MoE expert reads, context growth."""

from __future__ import annotations

import pytest

from planner.engine import get_gpu, get_model, parse_format
from planner.engine.latency import load_point, step_model


def _model(model: str, fmt: str, gpu: str, engine: str = "vllm", gpus: int = 1):  # type: ignore[no-untyped-def]
    return step_model(
        get_model(model).spec,
        parse_format(fmt),
        get_gpu(gpu),
        engine=engine,
        gpus=gpus,
    )


def _decode_s(m, batch: int, context: float = 1000.0) -> float:  # type: ignore[no-untyped-def]
    return m.step_s(
        decode_tokens=batch,
        decode_context=context,
        prefill_tokens=0,
        prefill_context=0,
    )


def test_a_step_never_beats_its_per_layer_floor() -> None:
    m = _model("smollm2-135m-instruct", "fp16", "h100-sxm")
    # A 135M model reads ~0.27 GB: 0.1 ms at H100 bandwidth; 30 layers of floor
    # and the scheduler cost more than that.
    assert _decode_s(m, 1) >= m.floor_s
    assert m.floor_s > 30 * 10e-6


def test_moe_decode_reads_more_experts_as_the_batch_grows() -> None:
    m = _model("qwen3-30b-a3b", "fp16", "h100-sxm")
    one, eight, big = _decode_s(m, 1), _decode_s(m, 8), _decode_s(m, 64)
    # Batch 8 touches ~40% of the experts instead of 6%: the step gets slower,
    # where a dense model's step barely moves at batch 8.
    assert eight > 1.5 * one
    dense = _model("llama-3.1-8b", "fp16", "h100-sxm")
    assert _decode_s(dense, 8) < 1.15 * _decode_s(dense, 1)
    assert big > eight


def test_moe_single_stream_is_not_dense_active_parameter_speed() -> None:
    # The example: Qwen3-30B-A3B fp16 on one H100 was planned at 405
    # tokens/s at batch 1; floors and expert reads bring it well under 300.
    m = _model("qwen3-30b-a3b", "fp16", "h100-sxm")
    assert 1 / _decode_s(m, 1) < 300


def test_attention_reads_grow_with_context() -> None:
    m = _model("llama-3.1-8b", "fp16", "h100-sxm")
    assert _decode_s(m, 32, context=32_000) > 1.5 * _decode_s(m, 32, context=1_000)


def test_tensor_parallel_pays_an_all_reduce_that_pcie_makes_dearer() -> None:
    nvlink = _model("llama-3.1-70b", "fp16", "h100-sxm", gpus=4)
    pcie = _model("llama-3.1-70b", "fp16", "l40s", gpus=4)
    assert nvlink.allreduce_s(1) > 0
    assert pcie.allreduce_s(1) > nvlink.allreduce_s(1)
    assert pcie.allreduce_s(4096) > 5 * nvlink.allreduce_s(4096)
    single = _model("llama-3.1-8b", "fp16", "h100-sxm", gpus=1)
    assert single.allreduce_s(64) == 0


def test_time_per_token_and_ttft_grow_with_load() -> None:
    m = _model("llama-3.1-8b", "fp16", "l4")
    points = [
        load_point(m, concurrency=n, prompt_tokens=1000, output_tokens=300)
        for n in (1, 4, 16, 64)
    ]
    tpots = [p.tpot_p95_s for p in points]
    ttfts = [p.ttft_p95_s for p in points]
    assert tpots == sorted(tpots) and tpots[-1] > 1.5 * tpots[0]
    assert ttfts == sorted(ttfts)
    # Throughput rises with batching even though each user slows down.
    assert points[-1].output_tokens_per_s > 5 * points[0].output_tokens_per_s


@pytest.mark.parametrize("engine,fmt", [("vllm", "fp16"), ("llama.cpp", "gguf-Q4_K_M")])
def test_p95_is_never_below_the_mean(engine: str, fmt: str) -> None:
    m = _model("llama-3.1-8b", fmt, "a100-80gb", engine=engine)
    p = load_point(m, concurrency=10, prompt_tokens=2000, output_tokens=200)
    assert p.ttft_p95_s >= p.ttft_s
    assert p.tpot_p95_s >= p.tpot_s


def test_one_request_alone_has_no_prompt_in_its_time_per_output_token() -> None:
    """Its own prompt ran before its first token (TTFT); with others in flight,
    their prompts share its decode steps."""
    m = _model("smollm2-135m-instruct", "gguf-Q4_1", "cpu-generic-ddr5", "llama.cpp")
    alone = load_point(m, concurrency=1, prompt_tokens=128, output_tokens=32)
    decode = m.step_s(
        decode_tokens=1, decode_context=128 + 16, prefill_tokens=0, prefill_context=0
    )
    assert alone.tpot_s == pytest.approx(decode)
    two = load_point(m, concurrency=2, prompt_tokens=128, output_tokens=32)
    with_prompt = m.step_s(
        decode_tokens=2, decode_context=128 + 16, prefill_tokens=4, prefill_context=64
    )
    assert two.tpot_s == pytest.approx(with_prompt)


def _step(m, decode: float, decode_ctx: float, prefill: float) -> float:  # type: ignore[no-untyped-def]
    return m.step_s(
        decode_tokens=decode,
        decode_context=decode_ctx,
        prefill_tokens=prefill,
        prefill_context=prefill / 2,
    )


def test_decode_tokens_in_a_step_with_a_prompt_run_at_the_prompts_efficiency() -> None:
    m = _model("llama-3.1-8b", "gguf-Q4_K_M", "cpu-epyc-genoa-2s", "llama.cpp")
    alone = _step(m, 8, 0, 0) - _step(m, 0, 0, 0)
    beside_a_prompt = _step(m, 8, 0, 512) - _step(m, 0, 0, 512)
    # One GEMM runs every token: 8 more rows of a 512-token prompt cost what 8
    # prompt tokens cost, not what a decode-only step of 8 sequences does.
    assert beside_a_prompt == pytest.approx(
        8 / 512 * (_step(m, 0, 0, 512) - m.floor_s), rel=0.05
    )
    assert beside_a_prompt < 0.75 * alone


def test_a_prompt_shares_its_step_with_the_prompts_sent_while_it_waited() -> None:
    from planner.engine.latency import time_to_first_token

    cpu = _model("smollm2-135m-instruct", "gguf-Q4_1", "cpu-epyc-genoa-2s", "llama.cpp")
    p, o = 128, 32
    alone = _step(cpu, 7, p + o / 2, p)
    # 7 others finishing one request per 32 steps each: 7 * 128 / 32 = 28 prompt
    # tokens join its step on average (measured at 8 llama-server slots: 0.17
    # prompts beside each, this estimate 0.21).
    shared = time_to_first_token(cpu, 8, p, o, 0.0)
    assert shared == pytest.approx(
        cpu.step_s(
            decode_tokens=7,
            decode_context=p + o / 2,
            prefill_tokens=p + 28,
            prefill_context=(p + 28) / 2,
        ),
        rel=1e-6,
    )
    assert 1.1 < shared / alone < 1.3
    # Alone in the server, nothing joins it.
    assert time_to_first_token(cpu, 1, p, o, 0.0) == pytest.approx(
        _step(cpu, 0, 0, p), rel=1e-6
    )


def test_ttft_counts_the_context_of_the_sequences_decoding_beside_the_prompt() -> None:
    from planner.engine.latency import _prefill_s

    m = _model("llama-3.1-8b", "fp16", "h100-sxm")
    # 64 sequences of 8k tokens read their KV cache in the prompt's step too.
    assert _prefill_s(m, 64, 100, 8000) > 2 * _prefill_s(m, 64, 100, 0)
