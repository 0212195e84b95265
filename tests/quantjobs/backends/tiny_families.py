"""Tiny random-weight checkpoints of every architecture family in the catalog.

Each has its family's real ``config.json`` keys (written by the transformers
4.51.3 config class where one exists) and a real tokenizer: the sample's
byte-level BPE (llama.cpp's converter recognises a BPE vocabulary by how it
splits a fixed text, so an invented one is refused) or, for the families whose
converter reads a SentencePiece ``tokenizer.model`` (Gemma, Phi-3), one trained
here on Python's own documentation text.

DeepSeek-V2 has no class in transformers 4.51.3 (it is remote code on the Hub):
its checkpoint is DeepSeek-V3's module layout under V2's config keys, written
with safetensors directly.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"
HIDDEN = 128
FFN = 256  # a multiple of 256: ffn_down rows take the K-quant types themselves
LAYERS = 2
# MoE routers are Linear layers with one output per expert: 8, as in Mixtral,
# so the torch methods' 4-bit packing (8 values per 32-bit word) applies.
SPM_VOCAB = 1024
# Gemma-2-it's chat template: real tokenizer configs carry one, and it is part
# of the GGUF metadata the planner estimates.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception("
    "'System role not supported') }}{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/"
    "assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
    "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\\n'}}{% endif %}"
)

_BASE: dict[str, Any] = {
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}
_BPE_IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
_SPM_IDS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
# The SentencePiece families get a wider MLP. The planner estimates the GGUF's
# tokenizer strings from the vocabulary size alone (their real lengths are not in
# config.json): a few kB off, under 0.1% of a real model's file. A 1024-piece
# vocabulary leaves a 128-wide, 2-layer model at ~0.4 MB, where those kB would be
# 1.5%; with this MLP the weights again dominate the file, as they do in reality.
_SPM_FFN = {"intermediate_size": 4096}

# family -> (transformers config class, model class, tokenizer kind, config keys)
FAMILIES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", "bpe", {"tie_word_embeddings": True}),
    "llama3.1": (
        "LlamaConfig",
        "LlamaForCausalLM",
        "bpe",
        {
            "max_position_embeddings": 131072,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        },
    ),
    "mistral": ("MistralConfig", "MistralForCausalLM", "bpe", {"sliding_window": None}),
    "mixtral": (
        "MixtralConfig",
        "MixtralForCausalLM",
        "bpe",
        {"num_local_experts": 8, "num_experts_per_tok": 2},
    ),
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        "bpe",
        {"tie_word_embeddings": True, "use_sliding_window": False},
    ),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        "bpe",
        {
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": FFN,
            "shared_expert_intermediate_size": FFN,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
        },
    ),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "bpe", {"head_dim": 32}),
    "qwen3_moe": (
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        "bpe",
        {
            "head_dim": 32,
            "num_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": FFN,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
        },
    ),
    "gemma": (
        "GemmaConfig",
        "GemmaForCausalLM",
        "spm",
        {"head_dim": 32, "hidden_activation": "gelu_pytorch_tanh"},
    ),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        "spm",
        {"head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 64},
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        "spm",
        {"head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 64},
    ),
    "phi3": (
        "Phi3Config",
        "Phi3ForCausalLM",
        "spm",
        {
            "tie_word_embeddings": False,
            "original_max_position_embeddings": 4096,
            # Llama-2's pieces plus Phi-3's added chat tokens (see _PHI3_ADDED).
            "vocab_size": SPM_VOCAB + 64,
        },
    ),
    "deepseek_v2": (
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        "bpe",
        {
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "moe_intermediate_size": FFN,
            "first_k_dense_replace": 1,
            "moe_layer_freq": 1,
            # DeepSeek-V2 (not V2-Lite) compresses queries too; transformers'
            # V3 module cannot build the uncompressed q_proj of V2-Lite.
            "q_lora_rank": 64,
            "kv_lora_rank": 64,
            "qk_nope_head_dim": 32,
            "qk_rope_head_dim": 16,
            "v_head_dim": 32,
            "n_group": 1,
            "topk_group": 1,
            "num_key_value_heads": 4,
            "rope_scaling": None,
        },
    ),
    "deepseek_v3": (
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        "bpe",
        {
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "moe_intermediate_size": FFN,
            "first_k_dense_replace": 1,
            "q_lora_rank": 64,
            "kv_lora_rank": 64,
            "qk_nope_head_dim": 32,
            "qk_rope_head_dim": 16,
            "v_head_dim": 32,
            "n_group": 1,
            "topk_group": 1,
            "num_key_value_heads": 4,
            "rope_scaling": None,
        },
    ),
}

# What DeepSeek-V2's own config.json says beyond V3's keys, and what it lacks.
_DEEPSEEK_V2_KEYS = {
    "model_type": "deepseek_v2",
    "architectures": ["DeepseekV2ForCausalLM"],
    "topk_method": "greedy",
    "scoring_func": "softmax",
    "norm_topk_prob": False,
    "routed_scaling_factor": 1.0,
    "aux_loss_alpha": 0.001,
    "seq_aux": True,
}


def write_bpe_tokenizer(model_dir: Path) -> None:
    """The sample's byte-level BPE tokenizer, laid out as SmolLM2's repository has it."""
    from gguf import GGUFReader

    reader = GGUFReader(str(sample_path(SAMPLE)))

    def field(key: str) -> Any:
        return reader.get_field(key).contents()  # type: ignore[union-attr]

    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    added = [
        {"id": i, "content": t, "special": True, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False}
        for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind == 3
    ]  # fmt: skip
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}  # fmt: skip
    tokenizer = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in field("tokenizer.ggml.merges")],
        },
    }
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "add_bos_token": False,
        "chat_template": field("tokenizer.chat_template"),
        "tokenizer_class": "GPT2Tokenizer",
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))


def train_spm_tokenizer(out_dir: Path) -> Path:
    """A SentencePiece ``tokenizer.model`` (Gemma's special ids) trained on pydoc text."""
    from pydoc_data.topics import topics

    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    text = out_dir / "corpus.txt"
    text.write_text("\n".join(topics.values()), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(out_dir / "tokenizer"),
        vocab_size=SPM_VOCAB,
        model_type="bpe",
        byte_fallback=True,  # llama.cpp needs the <0xNN> byte pieces
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        character_coverage=1.0,
        num_threads=2,
        minloglevel=2,
    )
    return out_dir / "tokenizer.model"


def _write_spm_tokenizer(model_dir: Path, spm_model: Path) -> None:
    (model_dir / "tokenizer.model").write_bytes(spm_model.read_bytes())
    config = {
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "add_bos_token": True,
        "add_eos_token": False,
        "chat_template": GEMMA_CHAT_TEMPLATE,
        # Phi-3's converter reads it; Gemma's repositories name their own class.
        "tokenizer_class": "LlamaTokenizer",
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))


# Phi-3's added_tokens.json (ids after the SentencePiece pieces, 32000 in the
# real model). llama.cpp requires <|endoftext|> in any model named phi3.
_PHI3_ADDED = [
    "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
    "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
    "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
]  # fmt: skip


def build_family(family: str, out_dir: Path, spm_model: Path, seed: int = 0) -> Path:
    """Write the tiny checkpoint of ``family`` (a key of FAMILIES) into ``out_dir``."""
    import torch

    hf: Any = importlib.import_module("transformers")
    config_cls, model_cls, tokenizer, keys = FAMILIES[family]
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = _BPE_IDS if tokenizer == "bpe" else _SPM_IDS
    vocab = 49152 if tokenizer == "bpe" else SPM_VOCAB
    wide = _SPM_FFN if tokenizer == "spm" else {}
    config = getattr(hf, config_cls)(
        **{**_BASE, **ids, "vocab_size": vocab, **wide, **keys}
    )
    torch.manual_seed(seed)
    model = getattr(hf, model_cls)(config).to(torch.float16).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    if tokenizer == "bpe":
        write_bpe_tokenizer(out_dir)
    else:
        _write_spm_tokenizer(out_dir, spm_model)
    if family == "phi3":
        added = {token: SPM_VOCAB + i for i, token in enumerate(_PHI3_ADDED)}
        (out_dir / "added_tokens.json").write_text(json.dumps(added))
    if family == "deepseek_v2":
        _as_deepseek_v2(out_dir)
    return out_dir


def _as_deepseek_v2(model_dir: Path) -> None:
    """Rewrite a V3-layout checkpoint as DeepSeek-V2: its config keys, no bias term."""
    from safetensors.numpy import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = {
        name: value
        for name, value in load_file(path).items()
        if not name.endswith("e_score_correction_bias")
    }
    save_file(tensors, path, metadata={"format": "pt"})
    config = json.loads((model_dir / "config.json").read_text())
    config.update(_DEEPSEEK_V2_KEYS)
    (model_dir / "config.json").write_text(json.dumps(config, indent=2))
