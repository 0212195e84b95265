"""Bytes of the attention key/value cache.

Per layer and token a standard layer stores ``kv_heads * (head_dim + v_head_dim)``
elements; a DeepSeek MLA layer stores one latent "head" of
``kv_lora_rank + qk_rope_head_dim`` elements (what vLLM and llama.cpp cache).
Sliding-window layers keep at most ``sliding_window`` tokens. Quantized caches
(q8_0, q4_0) use ggml's block sizes, so a row costs 34/32 or 18/32 bytes per element.
"""

from __future__ import annotations

from functools import lru_cache

from .ggml import GGML_TYPES
from .spec import ModelSpec

# cache dtype -> (bytes per block, elements per block)
_CACHE_DTYPES: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "fp8": (1, 1),
    "fp8_e4m3": (1, 1),
    "fp8_e5m2": (1, 1),
    "q8_0": (GGML_TYPES["Q8_0"].block_bytes, GGML_TYPES["Q8_0"].block_size),
    "q4_0": (GGML_TYPES["Q4_0"].block_bytes, GGML_TYPES["Q4_0"].block_size),
}
_CACHE_ALIASES = {
    "fp32": "f32",
    "float32": "f32",
    "fp16": "f16",
    "float16": "f16",
    "half": "f16",
    "auto": "f16",
    "bfloat16": "bf16",
    "fp8_e4m3fn": "fp8_e4m3",
    "float8": "fp8",
}
CACHE_DTYPES = tuple(_CACHE_DTYPES)


class CacheDtypeError(ValueError):
    """An unknown KV cache dtype; the message lists the known ones."""


def normalize_cache_dtype(cache_dtype: str) -> str:
    """Canonical name of a KV cache dtype (``f16``, ``fp8``, ``q8_0``, ...)."""
    key = str(cache_dtype).strip().lower()
    key = _CACHE_ALIASES.get(key, key)
    if key not in _CACHE_DTYPES:
        raise CacheDtypeError(
            f"kv_cache_dtype {cache_dtype!r} is unknown; use one of {', '.join(CACHE_DTYPES)}"
        )
    return key


def cache_row_bytes(n_elements: int, cache_dtype: str) -> int:
    """Bytes to store ``n_elements`` cache values in ``cache_dtype`` (whole blocks)."""
    block_bytes, block = _CACHE_DTYPES[normalize_cache_dtype(cache_dtype)]
    return -(-n_elements // block) * block_bytes


def kv_elements_per_token_per_layer(spec: ModelSpec) -> int:
    """Cache elements one token adds to one layer (K and V, or the MLA latent)."""
    if spec.is_mla:
        return spec.kv_lora_rank + spec.qk_rope_head_dim
    return spec.num_kv_heads * (spec.head_dim + spec.v_head_dim)


@lru_cache(maxsize=1024)
def kv_bytes_per_token_per_layer(spec: ModelSpec, cache_dtype: str) -> int:
    """Cache bytes one token adds to one layer in ``cache_dtype``."""
    if spec.is_mla:
        return cache_row_bytes(kv_elements_per_token_per_layer(spec), cache_dtype)
    k = cache_row_bytes(spec.num_kv_heads * spec.head_dim, cache_dtype)
    v = cache_row_bytes(spec.num_kv_heads * spec.v_head_dim, cache_dtype)
    return k + v


def kv_layer_counts(spec: ModelSpec) -> tuple[int, int]:
    """(full-attention layers, sliding-window layers)."""
    sliding = spec.num_sliding_layers
    return spec.num_layers - sliding, sliding


def kv_cache_bytes(
    spec: ModelSpec, *, context_tokens: int, sequences: int, cache_dtype: str = "f16"
) -> int:
    """KV cache bytes for ``sequences`` sequences of ``context_tokens`` tokens each."""
    if context_tokens < 0 or sequences < 0:
        raise ValueError("context_tokens and sequences must not be negative")
    per_layer = kv_bytes_per_token_per_layer(spec, normalize_cache_dtype(cache_dtype))
    full, sliding = kv_layer_counts(spec)
    window_tokens = min(context_tokens, spec.sliding_window or context_tokens)
    tokens = full * context_tokens + sliding * window_tokens
    return tokens * per_layer * sequences
