"""kv_cache_bytes: GQA, head_dim, sliding windows, MLA, cache dtypes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.engine import CacheDtypeError, ModelSpec, kv_cache_bytes


def test_llama_3_8b_f16_cache_is_128_kib_per_token(llama3_8b: ModelSpec) -> None:
    # 32 layers x 8 kv heads x 128 dims x (K+V) x 2 bytes
    assert (
        kv_cache_bytes(llama3_8b, context_tokens=1, sequences=1) == 32 * 8 * 128 * 2 * 2
    )
    assert kv_cache_bytes(llama3_8b, context_tokens=8192, sequences=4) == (
        131072 * 8192 * 4
    )


def test_explicit_head_dim_is_used(smollm2: ModelSpec) -> None:
    assert kv_cache_bytes(smollm2, context_tokens=1, sequences=1) == 30 * 3 * 64 * 2 * 2


@pytest.mark.parametrize(
    ("dtype", "bytes_per_token"),
    [
        ("f32", 4 * 65536),
        ("f16", 2 * 65536),
        ("bf16", 2 * 65536),
        ("fp8", 65536),
        ("fp8_e5m2", 65536),
        ("q8_0", 65536 * 34 // 32),
        ("q4_0", 65536 * 18 // 32),
    ],
)
def test_cache_dtypes_use_their_element_or_block_size(
    llama3_8b: ModelSpec, dtype: str, bytes_per_token: int
) -> None:
    assert (
        kv_cache_bytes(llama3_8b, context_tokens=1, sequences=1, cache_dtype=dtype)
        == bytes_per_token
    )


def test_sliding_window_layers_stop_growing_at_the_window(
    specs: dict[str, ModelSpec],
) -> None:
    gemma = specs["gemma-2-9b"]  # 21 sliding (4096) and 21 global layers
    per_token_layer = 8 * 256 * 2 * 2
    at_32k = kv_cache_bytes(gemma, context_tokens=32768, sequences=1)
    assert at_32k == (21 * 32768 + 21 * 4096) * per_token_layer
    mistral = specs["mistral-7b-v0.1"]
    assert kv_cache_bytes(mistral, context_tokens=32768, sequences=1) == kv_cache_bytes(
        mistral, context_tokens=4096, sequences=1
    )


def test_mla_caches_one_latent_per_token_and_layer(deepseek_v3: ModelSpec) -> None:
    assert (
        kv_cache_bytes(deepseek_v3, context_tokens=1, sequences=1)
        == 61 * (512 + 64) * 2
    )


def test_unknown_cache_dtype_lists_the_known_ones(llama3_8b: ModelSpec) -> None:
    with pytest.raises(CacheDtypeError, match="q8_0"):
        kv_cache_bytes(llama3_8b, context_tokens=1, sequences=1, cache_dtype="int3")


def test_negative_sizes_are_refused(llama3_8b: ModelSpec) -> None:
    with pytest.raises(ValueError):
        kv_cache_bytes(llama3_8b, context_tokens=-1, sequences=1)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(
        [
            "llama-3.1-8b",
            "gemma-2-9b",
            "deepseek-v3",
            "mistral-7b-v0.1",
            "qwen3-30b-a3b",
            "phi-3-mini",
        ]
    ),
    ctx=st.integers(0, 200_000),
    extra=st.integers(0, 50_000),
    seqs=st.integers(1, 64),
    more=st.integers(0, 16),
    dtype=st.sampled_from(["f32", "f16", "fp8", "q8_0", "q4_0"]),
)
def test_cache_grows_with_context_and_sequences(
    specs: dict[str, ModelSpec],
    name: str,
    ctx: int,
    extra: int,
    seqs: int,
    more: int,
    dtype: str,
) -> None:
    spec = specs[name]
    base = kv_cache_bytes(spec, context_tokens=ctx, sequences=seqs, cache_dtype=dtype)
    assert base >= 0
    assert (
        kv_cache_bytes(
            spec, context_tokens=ctx + extra, sequences=seqs, cache_dtype=dtype
        )
        >= base
    )
    assert (
        kv_cache_bytes(
            spec, context_tokens=ctx, sequences=seqs + more, cache_dtype=dtype
        )
        >= base
    )
