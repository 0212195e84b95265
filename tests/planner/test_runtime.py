"""Engine memory per GPU: vLLM and llama.cpp, tensor parallel, what fits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.engine import (
    GpuSpec,
    ModelSpec,
    estimate_memory,
    fewest_gpus,
    max_concurrency,
    max_context_tokens,
    parse_format,
)
from planner.engine.gguf_rules import gguf_cpu_repack_bytes
from planner.engine.runtime import (
    LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES,
    VLLM_CUDA_CONTEXT_BYTES,
    VLLM_CUDA_GRAPHS_BYTES,
    valid_tensor_parallel,
)

FP16 = parse_format("fp16")
Q4KM = parse_format("gguf-Q4_K_M")


def test_vllm_budget_is_gpu_memory_utilization_of_the_gpu(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    est = estimate_memory(
        llama3_8b,
        FP16,
        h100,
        engine="vllm",
        gpus=1,
        context_tokens=8192,
        sequences=4,
        gpu_memory_utilization=0.8,
    )
    assert est.budget_bytes_per_gpu == int(80 * 2**30 * 0.8)
    assert est.fits
    assert (
        est.overhead_bytes_per_gpu == VLLM_CUDA_CONTEXT_BYTES + VLLM_CUDA_GRAPHS_BYTES
    )
    assert est.total_bytes_per_gpu == (
        est.weights_bytes_per_gpu
        + est.kv_cache_bytes_per_gpu
        + est.activation_bytes_per_gpu
        + est.overhead_bytes_per_gpu
    )


def test_vllm_rounds_each_sequence_up_to_16_token_blocks(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    one = estimate_memory(
        llama3_8b, FP16, h100, engine="vllm", gpus=1, context_tokens=1, sequences=1
    )
    sixteen = estimate_memory(
        llama3_8b, FP16, h100, engine="vllm", gpus=1, context_tokens=16, sequences=1
    )
    assert one.kv_cache_bytes_per_gpu == sixteen.kv_cache_bytes_per_gpu == 16 * 131072


def test_70b_fp16_needs_two_h100s_and_gptq_int4_one(
    llama3_70b: ModelSpec, h100: GpuSpec
) -> None:
    assert (
        fewest_gpus(
            llama3_70b, FP16, h100, engine="vllm", context_tokens=4096, sequences=1
        )
        == 2
    )
    assert (
        fewest_gpus(
            llama3_70b,
            parse_format("gptq-4bit-g128"),
            h100,
            engine="vllm",
            context_tokens=4096,
            sequences=1,
        )
        == 1
    )


def test_nothing_fits_when_eight_gpus_are_not_enough(
    deepseek_v3: ModelSpec, a10g: GpuSpec
) -> None:
    assert (
        fewest_gpus(
            deepseek_v3, FP16, a10g, engine="vllm", context_tokens=4096, sequences=1
        )
        is None
    )


def test_tensor_parallel_splits_weights_and_kv_heads(
    llama3_70b: ModelSpec, h100: GpuSpec
) -> None:
    one = estimate_memory(
        llama3_70b, FP16, h100, engine="vllm", gpus=1, context_tokens=8192, sequences=8
    )
    four = estimate_memory(
        llama3_70b, FP16, h100, engine="vllm", gpus=4, context_tokens=8192, sequences=8
    )
    assert four.weights_bytes_per_gpu == pytest.approx(
        one.weights_bytes_per_gpu / 4, rel=0.01
    )
    assert four.kv_cache_bytes_per_gpu == one.kv_cache_bytes_per_gpu // 4


def test_kv_heads_replicate_when_gpus_outnumber_them(
    specs: dict[str, ModelSpec], h100: GpuSpec
) -> None:
    qwen = specs["qwen2-7b"]  # 28 heads, 4 kv heads: TP 8 is invalid (28 % 8)
    assert not valid_tensor_parallel(qwen, 8)
    smol = specs["qwen3-30b-a3b"]  # 32 heads, 4 kv heads
    four = estimate_memory(
        smol, FP16, h100, engine="vllm", gpus=4, context_tokens=4096, sequences=1
    )
    eight = estimate_memory(
        smol, FP16, h100, engine="vllm", gpus=8, context_tokens=4096, sequences=1
    )
    assert eight.kv_cache_bytes_per_gpu == four.kv_cache_bytes_per_gpu  # 1 head per GPU


def test_mla_cache_is_not_split_by_tensor_parallelism(
    deepseek_v3: ModelSpec, h100: GpuSpec
) -> None:
    two = estimate_memory(
        deepseek_v3, FP16, h100, engine="vllm", gpus=2, context_tokens=4096, sequences=1
    )
    eight = estimate_memory(
        deepseek_v3, FP16, h100, engine="vllm", gpus=8, context_tokens=4096, sequences=1
    )
    assert two.kv_cache_bytes_per_gpu == eight.kv_cache_bytes_per_gpu


def test_llama_cpp_keeps_the_input_embedding_in_host_ram(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    est = estimate_memory(
        llama3_8b,
        Q4KM,
        h100,
        engine="llama.cpp",
        gpus=1,
        context_tokens=4096,
        sequences=1,
    )
    embd = 128256 * 4096 * 144 // 256  # token_embd in Q4_K
    assert est.host_bytes > embd
    assert est.budget_bytes_per_gpu == 80 * 2**30


def test_llama_cpp_pads_the_total_context_to_256(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    est = estimate_memory(
        llama3_8b,
        Q4KM,
        h100,
        engine="llama.cpp",
        gpus=1,
        context_tokens=100,
        sequences=1,
    )
    assert est.kv_cache_bytes_per_gpu == 256 * 131072


def test_apple_and_cpu_budgets_leave_room_for_the_system(
    llama3_8b: ModelSpec, apple: GpuSpec, cpu_server: GpuSpec
) -> None:
    a = estimate_memory(
        llama3_8b,
        Q4KM,
        apple,
        engine="llama.cpp",
        gpus=1,
        context_tokens=4096,
        sequences=1,
    )
    assert a.budget_bytes_per_gpu == int(64 * 2**30 * 0.75)
    c = estimate_memory(
        llama3_8b,
        Q4KM,
        cpu_server,
        engine="llama.cpp",
        gpus=1,
        context_tokens=4096,
        sequences=1,
    )
    assert c.budget_bytes_per_gpu == int(512 * 2**30 * 0.9)
    assert c.fits


@pytest.mark.parametrize(
    ("fmt", "repacked"),
    [("gguf-Q4_0", True), ("gguf-Q4_K_M", True), ("gguf-Q8_0", False)],
)
def test_llama_cpp_on_a_cpu_counts_the_repacked_copy_and_no_cuda(
    llama3_8b: ModelSpec, cpu_server: GpuSpec, h100: GpuSpec, fmt: str, repacked: bool
) -> None:
    kwargs = {"engine": "llama.cpp", "gpus": 1, "context_tokens": 4096, "sequences": 1}
    on_cpu = estimate_memory(llama3_8b, parse_format(fmt), cpu_server, **kwargs)
    on_gpu = estimate_memory(llama3_8b, parse_format(fmt), h100, **kwargs)
    repack = gguf_cpu_repack_bytes(llama3_8b, fmt.removeprefix("gguf-"))
    assert (repack > 0) is repacked
    if fmt == "gguf-Q4_0":  # every matrix but the gathered token embedding
        assert repack > 0.8 * on_cpu.weights_bytes_per_gpu
    assert on_cpu.overhead_bytes_per_gpu == LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES + repack
    # Only the touched part of the compute buffer is resident on a CPU.
    assert 0 < on_cpu.activation_bytes_per_gpu < on_gpu.activation_bytes_per_gpu / 4
    assert on_cpu.kv_cache_bytes_per_gpu == on_gpu.kv_cache_bytes_per_gpu


def test_an_avx512_cpu_also_holds_repacked_q2_k_matrices(
    llama3_8b: ModelSpec, cpu_server: GpuSpec
) -> None:
    from dataclasses import replace

    from planner.engine.gguf_rules import gguf_tensor_sizes

    q2k = sum(  # the token embedding is gathered by row, never repacked
        n
        for t, ty, n in gguf_tensor_sizes(llama3_8b, "Q2_K")
        if ty == "Q2_K" and t.name != "token_embd.weight"
    )
    avx2 = gguf_cpu_repack_bytes(llama3_8b, "Q2_K")
    avx512 = gguf_cpu_repack_bytes(llama3_8b, "Q2_K", avx512=True)
    assert q2k > 2**30 and avx512 - avx2 == q2k
    kwargs = {"engine": "llama.cpp", "gpus": 1, "context_tokens": 4096, "sequences": 1}
    fmt = parse_format("gguf-Q2_K")
    plain = estimate_memory(llama3_8b, fmt, cpu_server, **kwargs)
    wide = replace(cpu_server, cpu_features=("avx2", "avx512"))
    assert estimate_memory(llama3_8b, fmt, wide, **kwargs).overhead_bytes_per_gpu == (
        plain.overhead_bytes_per_gpu + q2k
    )


def test_max_context_is_the_longest_that_fits(
    llama3_8b: ModelSpec, a10g: GpuSpec
) -> None:
    ctx = max_context_tokens(llama3_8b, FP16, a10g, engine="vllm", gpus=1, sequences=1)
    assert 0 < ctx < 131072
    assert estimate_memory(
        llama3_8b, FP16, a10g, engine="vllm", gpus=1, context_tokens=ctx, sequences=1
    ).fits
    assert not estimate_memory(
        llama3_8b,
        FP16,
        a10g,
        engine="vllm",
        gpus=1,
        context_tokens=ctx + 16,
        sequences=1,
    ).fits


def test_max_context_is_capped_at_the_models_positions(
    smollm2: ModelSpec, h100: GpuSpec
) -> None:
    assert (
        max_context_tokens(smollm2, FP16, h100, engine="vllm", gpus=1, sequences=1)
        == 8192
    )


def test_max_concurrency_is_the_most_sequences_that_fit(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    n = max_concurrency(
        llama3_8b, FP16, h100, engine="vllm", gpus=1, context_tokens=8192
    )
    assert n > 10
    assert estimate_memory(
        llama3_8b, FP16, h100, engine="vllm", gpus=1, context_tokens=8192, sequences=n
    ).fits
    assert not estimate_memory(
        llama3_8b,
        FP16,
        h100,
        engine="vllm",
        gpus=1,
        context_tokens=8192,
        sequences=n + 1,
    ).fits


def test_nothing_fits_gives_zero_context_and_concurrency(
    llama3_70b: ModelSpec, a10g: GpuSpec
) -> None:
    assert (
        max_context_tokens(llama3_70b, FP16, a10g, engine="vllm", gpus=1, sequences=1)
        == 0
    )
    assert (
        max_concurrency(
            llama3_70b, FP16, a10g, engine="vllm", gpus=1, context_tokens=4096
        )
        == 0
    )


@settings(max_examples=80, deadline=None)
@given(
    fmt=st.sampled_from(["fp16", "fp8", "gptq-4bit-g128", "gguf-Q4_K_M", "gguf-Q8_0"]),
    engine=st.sampled_from(["vllm", "llama.cpp"]),
    ctx=st.integers(1, 100_000),
    extra=st.integers(1, 100_000),
    seqs=st.integers(1, 64),
    more=st.integers(1, 64),
    gpus=st.sampled_from([1, 2, 4, 8]),
)
def test_memory_grows_with_context_and_concurrency(
    llama3_8b: ModelSpec,
    h100: GpuSpec,
    fmt: str,
    engine: str,
    ctx: int,
    extra: int,
    seqs: int,
    more: int,
    gpus: int,
) -> None:
    f = parse_format(fmt)

    def total(c: int, s: int) -> int:
        return estimate_memory(
            llama3_8b, f, h100, engine=engine, gpus=gpus, context_tokens=c, sequences=s
        ).total_bytes_per_gpu

    base = total(ctx, seqs)
    assert total(ctx + extra, seqs) >= base
    assert total(ctx, seqs + more) >= base
