"""Fixtures for the planner engine tests: real model configs and GPU descriptions."""

from __future__ import annotations

from typing import Any

import pytest

from planner.engine import (
    GpuSpec,
    ModelSpec,
    gpu_spec_from_dict,
    model_spec_from_config,
)

LLAMA_3_8B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
    "tie_word_embeddings": False,
}
LLAMA_3_70B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
}
SMOLLM2_135M: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "head_dim": 64,
    "max_position_embeddings": 8192,
}
MIXTRAL_8X7B: dict[str, Any] = {
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 32768,
    "sliding_window": None,
}
DEEPSEEK_V2_LITE: dict[str, Any] = {
    "model_type": "deepseek_v2",
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 102400,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": None,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "max_position_embeddings": 163840,
    "topk_method": "greedy",
}
DEEPSEEK_V3: dict[str, Any] = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "vocab_size": 129280,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "max_position_embeddings": 163840,
    "topk_method": "noaux_tc",
}
QWEN2_7B: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "sliding_window": 131072,
    "use_sliding_window": False,
    "tie_word_embeddings": False,
}
QWEN2_MOE: dict[str, Any] = {
    "model_type": "qwen2_moe",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 151936,
    "num_experts": 60,
    "num_experts_per_tok": 4,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "max_position_embeddings": 8192,
}
QWEN3_30B_A3B: dict[str, Any] = {
    "model_type": "qwen3_moe",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "vocab_size": 151936,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "max_position_embeddings": 40960,
    "tie_word_embeddings": False,
}
GEMMA_2_9B: dict[str, Any] = {
    "model_type": "gemma2",
    "hidden_size": 3584,
    "intermediate_size": 14336,
    "num_hidden_layers": 42,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "vocab_size": 256000,
    "sliding_window": 4096,
    "max_position_embeddings": 8192,
}
GEMMA_3_4B_WRAPPED: dict[str, Any] = {
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "sliding_window": 1024,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    },
    "vision_config": {"model_type": "siglip_vision_model"},
}
PHI_3_MINI: dict[str, Any] = {
    "model_type": "phi3",
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32064,
    "max_position_embeddings": 4096,
    "sliding_window": 2047,
    "tie_word_embeddings": False,
}
MISTRAL_7B_V01: dict[str, Any] = {
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "sliding_window": 4096,
    "max_position_embeddings": 32768,
}

H100: dict[str, Any] = {
    "id": "h100-test",
    "name": "H100 SXM (test)",
    "vendor": "nvidia",
    "kind": "gpu",
    "memory_bytes": 80 * 2**30,
    "memory_bandwidth_bytes_per_s": 3.35e12,
    "tflops": {
        "fp32": 67,
        "tf32": 495,
        "fp16": 989,
        "bf16": 989,
        "fp8": 1979,
        "int8": 1979,
    },
    "interconnect": "nvlink4",
    "prices": [
        {"provider": "cheap", "usd_per_hour": 2.0},
        {"provider": "dear", "usd_per_hour": 4.0},
    ],
}
A10G: dict[str, Any] = {
    "id": "a10g-test",
    "name": "A10G (test)",
    "vendor": "nvidia",
    "kind": "gpu",
    "memory_bytes": 24 * 2**30,
    "memory_bandwidth_bytes_per_s": 600e9,
    "tflops": {"fp32": 31, "fp16": 125, "bf16": 125, "int8": 250, "fp8": None},
    "prices": [{"provider": "aws", "usd_per_hour": 1.0}],
}
APPLE_M3_MAX: dict[str, Any] = {
    "id": "m3-max-test",
    "name": "Apple M3 Max 64GB (test)",
    "vendor": "apple",
    "kind": "apple",
    "memory_bytes": 64 * 2**30,
    "memory_bandwidth_bytes_per_s": 400e9,
    "tflops": {"fp32": 14, "fp16": 28},
}
CPU_SERVER: dict[str, Any] = {
    "id": "cpu-test",
    "name": "2-socket DDR5 server (test)",
    "vendor": "cpu",
    "kind": "cpu",
    "memory_bytes": 512 * 2**30,
    "memory_bandwidth_bytes_per_s": 460e9,
    "tflops": {"fp32": 10},
    "prices": [{"provider": "any", "usd_per_hour": 3.0}],
}


@pytest.fixture(scope="session")
def llama3_8b() -> ModelSpec:
    """Llama 3.1 8B."""
    return model_spec_from_config(LLAMA_3_8B, model_id="llama-3.1-8b")


@pytest.fixture(scope="session")
def llama3_70b() -> ModelSpec:
    """Llama 3 70B."""
    return model_spec_from_config(LLAMA_3_70B, model_id="llama-3-70b")


@pytest.fixture(scope="session")
def smollm2() -> ModelSpec:
    """SmolLM2-135M-Instruct, the product's sample model."""
    return model_spec_from_config(SMOLLM2_135M, model_id="smollm2-135m")


@pytest.fixture(scope="session")
def mixtral() -> ModelSpec:
    """Mixtral 8x7B."""
    return model_spec_from_config(MIXTRAL_8X7B, model_id="mixtral-8x7b")


@pytest.fixture(scope="session")
def deepseek_v3() -> ModelSpec:
    """DeepSeek-V3 (MLA, 256 routed experts, 1 shared)."""
    return model_spec_from_config(DEEPSEEK_V3, model_id="deepseek-v3")


@pytest.fixture(scope="session")
def h100() -> GpuSpec:
    """An 80 GiB H100 with two prices."""
    return gpu_spec_from_dict(H100)


@pytest.fixture(scope="session")
def a10g() -> GpuSpec:
    """A 24 GiB A10G without FP8."""
    return gpu_spec_from_dict(A10G)


@pytest.fixture(scope="session")
def apple() -> GpuSpec:
    """An Apple M3 Max with 64 GiB unified memory."""
    return gpu_spec_from_dict(APPLE_M3_MAX)


@pytest.fixture(scope="session")
def cpu_server() -> GpuSpec:
    """A dual-socket CPU server."""
    return gpu_spec_from_dict(CPU_SERVER)


CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": LLAMA_3_8B,
    "llama-3-70b": LLAMA_3_70B,
    "smollm2-135m": SMOLLM2_135M,
    "mixtral-8x7b": MIXTRAL_8X7B,
    "deepseek-v2-lite": DEEPSEEK_V2_LITE,
    "deepseek-v3": DEEPSEEK_V3,
    "qwen2-7b": QWEN2_7B,
    "qwen1.5-moe": QWEN2_MOE,
    "qwen3-30b-a3b": QWEN3_30B_A3B,
    "gemma-2-9b": GEMMA_2_9B,
    "gemma-3-4b": GEMMA_3_4B_WRAPPED,
    "phi-3-mini": PHI_3_MINI,
    "mistral-7b-v0.1": MISTRAL_7B_V01,
}


@pytest.fixture(scope="session")
def configs() -> dict[str, dict[str, Any]]:
    """Every test config by name."""
    return CONFIGS


@pytest.fixture(scope="session")
def specs() -> dict[str, ModelSpec]:
    """Every test config parsed, by name."""
    return {k: model_spec_from_config(v, model_id=k) for k, v in CONFIGS.items()}
