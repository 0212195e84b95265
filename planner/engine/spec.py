# Kept whole: one concern, config.json to ModelSpec, with each family's rules.
"""A model's shape, read from its Hugging Face ``config.json``.

``model_spec_from_config`` turns the config of a Llama-style decoder (Llama,
Mistral, Mixtral, Qwen2/2-MoE/3/3-MoE, Gemma 1/2/3, Phi-3, DeepSeek-V2/V3,
gpt-oss, Llama 4) into
a ``ModelSpec``. Every problem with the input is a ``SpecError`` that names the
field and says what to change; no other exception escapes, whatever JSON value
comes in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# Bounds that no real model reaches; above them a config is a typo or an attack.
MAX_HIDDEN_SIZE = 1_000_000
MAX_LAYERS = 10_000
MAX_VOCAB_SIZE = 10_000_000
MAX_INTERMEDIATE_SIZE = 10_000_000
MAX_HEADS = 65_536
MAX_HEAD_DIM = 65_536
MAX_EXPERTS = 65_536
MAX_POSITIONS = 1 << 31

# model_type -> llama.cpp architecture name (what convert_hf_to_gguf writes).
GGUF_ARCH_BY_MODEL_TYPE: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "qwen2",
    "qwen2_moe": "qwen2moe",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
    "deepseek_v2": "deepseek2",
    "deepseek_v3": "deepseek2",
    "gpt_oss": "gpt-oss",
    "llama4": "llama4",
    "llama4_text": "llama4",
}

# Fields that transformers fills in when a config omits them.
_GEMMA3_DEFAULTS: dict[str, object] = {
    "vocab_size": 262_208,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "sliding_window": 4096,
    "max_position_embeddings": 131_072,
}
_TRANSFORMERS_DEFAULTS: dict[str, dict[str, object]] = {
    "gemma3": _GEMMA3_DEFAULTS,
    "gemma3_text": _GEMMA3_DEFAULTS,
}

_DEFAULT_TOPK_METHOD = {"deepseek_v2": "greedy", "deepseek_v3": "noaux_tc"}
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})
_QKV_BIAS_ALWAYS = frozenset({"qwen2", "qwen2_moe"})
_QK_NORM = frozenset({"qwen3", "qwen3_moe", "gemma3", "gemma3_text"})
_SANDWICH_NORMS = frozenset({"gemma2", "gemma3", "gemma3_text"})
_QWEN_STYLE_WINDOW = frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"})


class SpecError(ValueError):
    """A model config that cannot be sized; the message says what to change."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The shape of a decoder-only transformer, enough to size and time it."""

    model_id: str
    name: str
    model_type: str
    gguf_arch: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool = False
    attention_output_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    sandwich_norms: bool = False
    fused_qkv: bool = False
    fused_gate_up: bool = False
    rope_freqs_length: int = 0
    rope_factor_tensors: int = 0
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False
    # gpt-oss: a bias on the router and on every expert's three projections.
    expert_biases: bool = False
    # gpt-oss: one learned attention-sink logit per query head and layer.
    attention_sinks: bool = False
    moe_layers: tuple[bool, ...] = ()
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    notes: tuple[str, ...] = ()
    # Set when the spec was read from a GGUF file: that file's own format
    # (e.g. "gguf-Q4_1"), its tensors as stored (name, ggml type, data bytes) and
    # its size, so a plan sizes the file's own format exactly, not by the rules.
    stored_format: str = ""
    stored_tensors: tuple[tuple[str, str, int], ...] = ()
    stored_file_bytes: int = 0
    stored_metadata_bytes: int = 0  # the file's key/value block (tokenizer included)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Specs key many caches; hashing 80-entry layer tuples on every lookup is slow.
        fields = tuple(getattr(self, f) for f in _HASHED_FIELDS)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_moe(self) -> bool:
        """True when some layers route tokens to experts."""
        return self.num_experts > 0 and any(self.moe_layers)

    @property
    def is_mla(self) -> bool:
        """True for DeepSeek-style multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def n_gqa(self) -> int:
        """Query heads per key/value head (llama.cpp's ``n_gqa``)."""
        return self.num_attention_heads // self.num_kv_heads

    @property
    def num_moe_layers(self) -> int:
        """Number of layers whose MLP is a mixture of experts."""
        return sum(self.moe_layers)

    @property
    def num_sliding_layers(self) -> int:
        """Number of layers that attend only within the sliding window."""
        return sum(self.sliding_layers) if self.sliding_window else 0


_HASHED_FIELDS = tuple(f.name for f in fields(ModelSpec) if f.name != "_hash")


def model_spec_from_config(
    config: Mapping[str, Any], *, model_id: str = "custom", name: str | None = None
) -> ModelSpec:
    """Build a ``ModelSpec`` from a Hugging Face config dict, or raise SpecError."""
    if not isinstance(config, Mapping):
        raise SpecError(
            f"config: expected a JSON object (the contents of config.json), "
            f"got {type(config).__name__}"
        )
    try:
        return _parse(_flatten_text_config(config), model_id=model_id, name=name)
    except SpecError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, IndexError) as exc:
        # Defence in depth: every input problem must reach the user as a SpecError.
        raise SpecError(
            f"config: cannot be read ({exc}); check it is a valid config.json"
        ) from exc


def _flatten_text_config(config: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        str(k): v for k, v in config.items() if k != "text_config"
    }
    text = config.get("text_config")
    if text is None:
        return merged
    if not isinstance(text, Mapping):
        raise SpecError(
            "text_config: expected an object holding the language model's fields"
        )
    # The language model's own fields win over the wrapper's (Gemma 3, Llava, ...).
    merged.update({str(k): v for k, v in text.items()})
    merged["_wrapper_model_type"] = config.get("model_type")
    return merged


def _parse(cfg: Mapping[str, Any], *, model_id: str, name: str | None) -> ModelSpec:
    notes: list[str] = []
    model_type = _get_str(cfg, "model_type")
    if model_type is None:
        notes.append("config has no model_type; sized as a Llama-style decoder")
        model_type = "llama"
    model_type = model_type.lower()
    defaults = _TRANSFORMERS_DEFAULTS.get(model_type, {})
    missing = sorted(k for k in defaults if cfg.get(k) is None)
    if missing:
        # Gemma 3's nested text_config leaves these to transformers' defaults.
        cfg = {**cfg, **{k: defaults[k] for k in missing}}
        notes.append(
            f"{', '.join(missing)} taken from transformers' defaults for {model_type}"
        )
    gguf_arch = GGUF_ARCH_BY_MODEL_TYPE.get(model_type)
    if gguf_arch is None:
        notes.append(
            f"model_type {model_type!r} is not specifically supported; "
            "sized as a Llama-style decoder"
        )
        gguf_arch = "llama"

    hidden = _get_int(
        cfg, ("hidden_size", "n_embd", "d_model"), maximum=MAX_HIDDEN_SIZE
    )
    layers = _get_int(
        cfg, ("num_hidden_layers", "n_layer", "num_layers"), maximum=MAX_LAYERS
    )
    vocab = _get_int(cfg, ("vocab_size",), maximum=MAX_VOCAB_SIZE)
    heads = _get_int(cfg, ("num_attention_heads", "n_head"), maximum=MAX_HEADS)
    kv_heads = _get_opt_int(
        cfg, ("num_key_value_heads", "n_head_kv"), maximum=MAX_HEADS
    )
    if kv_heads is None:
        kv_heads = heads
    if kv_heads > heads or heads % kv_heads:
        raise SpecError(
            f"num_key_value_heads ({kv_heads}) must divide num_attention_heads ({heads}); "
            "check both values"
        )
    head_dim = _get_opt_int(cfg, ("head_dim",), maximum=MAX_HEAD_DIM)
    if head_dim is None:
        if hidden % heads:
            raise SpecError(
                f"num_attention_heads ({heads}) must divide hidden_size ({hidden}), "
                "or the config must give head_dim"
            )
        head_dim = hidden // heads
    max_pos = (
        _get_opt_int(
            cfg,
            ("max_position_embeddings", "n_positions", "max_sequence_length"),
            maximum=MAX_POSITIONS,
        )
        or 4096
    )

    tie = _get_bool(cfg, "tie_word_embeddings", default=model_type in _TIED_BY_DEFAULT)
    attention_bias = _get_bool(cfg, "attention_bias", default=False)
    qkv_bias = attention_bias or model_type in _QKV_BIAS_ALWAYS
    mlp_bias = _get_bool(cfg, "mlp_bias", default=False)

    rope_freqs, rope_factor_tensors = _rope_tensors(cfg, model_type, head_dim)
    window, sliding = _sliding_layers(cfg, model_type, layers)
    moe = _moe_fields(cfg, model_type, layers)
    mla = _mla_fields(cfg, heads)

    # Llama 4's dense layers are intermediate_size_mlp wide; its intermediate_size
    # is the width of one expert (and of the shared expert).
    dense_keys: tuple[str, ...] = ("intermediate_size", "n_inner", "ffn_dim")
    if model_type in ("llama4", "llama4_text"):
        dense_keys = ("intermediate_size_mlp", *dense_keys)
    intermediate = _get_opt_int(cfg, dense_keys, maximum=MAX_INTERMEDIATE_SIZE)
    has_dense_layer = not moe.num_experts or not all(moe.moe_layers)
    if intermediate is None:
        if has_dense_layer:
            raise SpecError(
                "intermediate_size: required (the width of the MLP); "
                "add it to the config"
            )
        intermediate = 0

    v_head_dim = head_dim
    if mla:
        v_head_dim = mla["v_head_dim"]
        head_dim = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        kv_heads = heads  # MLA expands the latent to one key/value head per query head

    return ModelSpec(
        model_id=str(model_id),
        name=str(name) if name is not None else str(model_id),
        model_type=model_type,
        gguf_arch=gguf_arch,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        v_head_dim=v_head_dim,
        intermediate_size=intermediate,
        max_position_embeddings=max_pos,
        tie_word_embeddings=tie,
        qkv_bias=qkv_bias,
        attention_output_bias=attention_bias and model_type not in _QKV_BIAS_ALWAYS,
        mlp_bias=mlp_bias,
        qk_norm=model_type in _QK_NORM,
        sandwich_norms=model_type in _SANDWICH_NORMS,
        fused_qkv=model_type == "phi3",
        fused_gate_up=model_type == "phi3",
        rope_freqs_length=rope_freqs,
        rope_factor_tensors=rope_factor_tensors,
        sliding_window=window,
        sliding_layers=sliding,
        num_experts=moe.num_experts,
        num_experts_per_tok=moe.num_experts_per_tok,
        moe_intermediate_size=moe.moe_intermediate_size,
        num_shared_experts=moe.num_shared_experts,
        shared_expert_intermediate_size=moe.shared_expert_intermediate_size,
        shared_expert_gate=moe.shared_expert_gate,
        router_bias=moe.router_bias,
        expert_biases=model_type == "gpt_oss" and moe.num_experts > 0,
        attention_sinks=model_type == "gpt_oss",
        moe_layers=moe.moe_layers or (False,) * layers,
        kv_lora_rank=mla.get("kv_lora_rank", 0),
        q_lora_rank=mla.get("q_lora_rank", 0),
        qk_nope_head_dim=mla.get("qk_nope_head_dim", 0),
        qk_rope_head_dim=mla.get("qk_rope_head_dim", 0),
        notes=tuple(notes),
    )


def _rope_tensors(
    cfg: Mapping[str, Any], model_type: str, head_dim: int
) -> tuple[int, int]:
    """Length of llama.cpp's rope frequency tensors: (rope_freqs, long/short factor count)."""
    scaling = cfg.get("rope_scaling")
    if not isinstance(scaling, Mapping):
        return 0, 0
    kind = scaling.get("rope_type", scaling.get("type"))
    if model_type == "llama" and kind == "llama3":
        return head_dim // 2, 0
    if model_type == "phi3" and kind in ("longrope", "su"):
        return head_dim // 2, 2
    return 0, 0


def _sliding_layers(
    cfg: Mapping[str, Any], model_type: str, layers: int
) -> tuple[int | None, tuple[bool, ...]]:
    if model_type in ("llama4", "llama4_text"):
        return _llama4_chunked_layers(cfg, layers)
    window = _get_opt_int(cfg, ("sliding_window",), maximum=MAX_POSITIONS)
    layer_types = cfg.get("layer_types")
    if window is None:
        return None, (False,) * layers
    if isinstance(layer_types, list) and layer_types:
        if len(layer_types) != layers or not all(
            isinstance(t, str) for t in layer_types
        ):
            raise SpecError(
                f"layer_types: expected {layers} strings (one per layer), "
                f"got {len(layer_types)} entries"
            )
        return window, tuple(t == "sliding_attention" for t in layer_types)
    if model_type == "gemma2":
        return window, tuple(i % 2 == 0 for i in range(layers))
    if model_type in ("gemma3", "gemma3_text"):
        pattern = (
            _get_opt_int(cfg, ("sliding_window_pattern",), maximum=MAX_LAYERS) or 6
        )
        return window, tuple((i + 1) % pattern != 0 for i in range(layers))
    if model_type in _QWEN_STYLE_WINDOW:
        if not _get_bool(cfg, "use_sliding_window", default=False):
            return None, (False,) * layers
        first = _get_opt_int(cfg, ("max_window_layers",), minimum=0, maximum=MAX_LAYERS)
        first = layers if first is None else first
        return window, tuple(i >= first for i in range(layers))
    # Mistral, Phi-3 and others: the window applies to every layer.
    return window, (True,) * layers


def _llama4_chunked_layers(
    cfg: Mapping[str, Any], layers: int
) -> tuple[int | None, tuple[bool, ...]]:
    """Llama 4's RoPE layers attend within chunks of ``attention_chunk_size`` tokens.

    llama.cpp keeps their KV cache as a window of that size (``src/models/llama4.cpp``:
    LLAMA_SWA_TYPE_CHUNKED, n_swa 8192, "3 chunked - 1 full"); every
    ``no_rope_layer_interval``-th layer (NoPE) attends globally.
    """
    chunk = _get_opt_int(cfg, ("attention_chunk_size",), maximum=MAX_POSITIONS)
    if chunk is None:
        return None, (False,) * layers
    flags = cfg.get("no_rope_layers")
    if isinstance(flags, list) and len(flags) == layers:
        return chunk, tuple(bool(f) for f in flags)
    interval = _get_opt_int(cfg, ("no_rope_layer_interval",), maximum=MAX_LAYERS) or 4
    return chunk, tuple((i + 1) % interval != 0 for i in range(layers))


@dataclass(frozen=True, slots=True)
class _Moe:
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    moe_layers: tuple[bool, ...] = ()
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False


def _moe_fields(cfg: Mapping[str, Any], model_type: str, layers: int) -> _Moe:
    n_experts = _get_opt_int(
        cfg,
        ("n_routed_experts", "num_local_experts", "num_experts"),
        minimum=0,
        maximum=MAX_EXPERTS,
    )
    if not n_experts:
        return _Moe()
    top_k = _get_int(
        cfg,
        ("num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k"),
        maximum=MAX_EXPERTS,
    )
    if top_k > n_experts:
        raise SpecError(
            f"num_experts_per_tok ({top_k}) cannot exceed the number of "
            f"experts ({n_experts})"
        )
    if model_type == "mixtral":
        expert_ff = _get_int(cfg, ("intermediate_size",), maximum=MAX_INTERMEDIATE_SIZE)
    else:
        expert_ff = (
            _get_opt_int(cfg, ("moe_intermediate_size",), maximum=MAX_INTERMEDIATE_SIZE)
            or 0
        )
        if not expert_ff:
            expert_ff = _get_int(
                cfg, ("intermediate_size",), maximum=MAX_INTERMEDIATE_SIZE
            )
    if model_type.startswith("deepseek"):
        first_dense = (
            _get_opt_int(cfg, ("first_k_dense_replace",), minimum=0, maximum=MAX_LAYERS)
            or 0
        )
        freq = _get_opt_int(cfg, ("moe_layer_freq",), maximum=MAX_LAYERS) or 1
        shared = (
            _get_opt_int(cfg, ("n_shared_experts",), minimum=0, maximum=MAX_EXPERTS)
            or 0
        )
        return _Moe(
            n_experts,
            top_k,
            expert_ff,
            tuple(i >= first_dense and i % freq == 0 for i in range(layers)),
            shared,
            shared * expert_ff,
            False,
            # transformers' DeepSeek-V3 always has the correction bias and
            # writes no topk_method; the Hub's V3 configs say "noaux_tc".
            (cfg.get("topk_method") or _DEFAULT_TOPK_METHOD.get(model_type))
            == "noaux_tc",
        )
    if model_type in ("qwen2_moe", "qwen3_moe"):
        step = _get_opt_int(cfg, ("decoder_sparse_step",), maximum=MAX_LAYERS) or 1
        only_mlp = cfg.get("mlp_only_layers") or []
        if not isinstance(only_mlp, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in only_mlp
        ):
            raise SpecError("mlp_only_layers: expected a list of layer numbers")
        dense = set(only_mlp)
        shared_ff = (
            _get_opt_int(
                cfg,
                ("shared_expert_intermediate_size",),
                minimum=0,
                maximum=MAX_INTERMEDIATE_SIZE,
            )
            or 0
        )
        return _Moe(
            n_experts,
            top_k,
            expert_ff,
            tuple(i not in dense and (i + 1) % step == 0 for i in range(layers)),
            1 if shared_ff else 0,
            shared_ff,
            bool(shared_ff),
        )
    if model_type in ("llama4", "llama4_text"):
        return _llama4_moe(cfg, n_experts, top_k, expert_ff, layers)
    return _Moe(n_experts, top_k, expert_ff, (True,) * layers)


def _llama4_moe(
    cfg: Mapping[str, Any], n_experts: int, top_k: int, expert_ff: int, layers: int
) -> _Moe:
    """Llama 4: MoE every ``interleave_moe_layer_step`` layers, each with a shared expert.

    transformers' default ``moe_layers`` is ``range(step - 1, layers, step)``:
    every layer for Scout (step 1), every second one for Maverick (step 2).
    """
    listed = cfg.get("moe_layers")
    if listed is not None:
        if not isinstance(listed, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers
            for i in listed
        ):
            raise SpecError(
                f"moe_layers: expected layer numbers from 0 to {layers - 1}"
            )
        chosen = set(listed)
    else:
        step = (
            _get_opt_int(cfg, ("interleave_moe_layer_step",), maximum=MAX_LAYERS) or 1
        )
        chosen = set(range(step - 1, layers, step))
    return _Moe(
        n_experts,
        top_k,
        expert_ff,
        tuple(i in chosen for i in range(layers)),
        1,
        expert_ff,
        False,
    )


def _mla_fields(cfg: Mapping[str, Any], heads: int) -> dict[str, int]:
    kv_lora = _get_opt_int(cfg, ("kv_lora_rank",), minimum=0, maximum=MAX_HIDDEN_SIZE)
    if not kv_lora:
        return {}
    q_lora = (
        _get_opt_int(cfg, ("q_lora_rank",), minimum=0, maximum=MAX_HIDDEN_SIZE) or 0
    )
    nope = _get_int(cfg, ("qk_nope_head_dim",), maximum=MAX_HEAD_DIM)
    rope = _get_int(cfg, ("qk_rope_head_dim",), maximum=MAX_HEAD_DIM)
    v_dim = _get_int(cfg, ("v_head_dim",), maximum=MAX_HEAD_DIM)
    del heads
    return {
        "kv_lora_rank": kv_lora,
        "q_lora_rank": q_lora,
        "qk_nope_head_dim": nope,
        "qk_rope_head_dim": rope,
        "v_head_dim": v_dim,
    }


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_int(key: str, value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise SpecError(f"{key}: must be a whole number, got {_describe(value)}")
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise SpecError(f"{key}: must be {what}, got {value}")
    if value > maximum:
        raise SpecError(
            f"{key}: {value} is implausibly large (limit {maximum}); check the config"
        )
    return value


def _get_opt_int(
    cfg: Mapping[str, Any], keys: tuple[str, ...], *, minimum: int = 1, maximum: int
) -> int | None:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return _as_int(key, cfg[key], minimum, maximum)
    return None


def _get_int(
    cfg: Mapping[str, Any], keys: tuple[str, ...], *, minimum: int = 1, maximum: int
) -> int:
    value = _get_opt_int(cfg, keys, minimum=minimum, maximum=maximum)
    if value is None:
        raise SpecError(f"{keys[0]}: required but missing from the config; add it")
    return value


def _get_bool(cfg: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(f"{key}: must be true or false, got {_describe(value)}")
    return value


def _get_str(cfg: Mapping[str, Any], key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 100:
        raise SpecError(
            f'{key}: must be a short string such as "llama", got {_describe(value)}'
        )
    return value
