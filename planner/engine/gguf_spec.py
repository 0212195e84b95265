"""A model's shape, read from a GGUF file's metadata and tensor table.

``model_spec_from_gguf`` turns what a (validated) GGUF header holds into the
same ``ModelSpec`` that ``model_spec_from_config`` builds from a config.json,
for every architecture the planner knows. Shapes come from the tensor table
wherever it holds them (it is what llama.cpp loads), counts of heads from the
metadata. The file's own tensors and size are kept on the spec, so the plan of
the file's own format is the file itself and every other format is sized "as
if converted from it".

The engine never opens a file: the caller parses the header (in a sandboxed
child process, see ``quantjobs.backends.gguf_inspect``) and passes plain data.
Every problem is a ``SpecError`` that names the key or tensor at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .ggml import GGML_TYPES, ggml_tensor_bytes
from .gguf_types import GGUF_FILE_TYPES
from .spec import (
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_HIDDEN_SIZE,
    MAX_INTERMEDIATE_SIZE,
    MAX_LAYERS,
    MAX_POSITIONS,
    MAX_VOCAB_SIZE,
    ModelSpec,
    SpecError,
)
from .tensors import tensor_inventory

# llama.cpp architecture -> the Hugging Face model_type the planner sizes it as.
MODEL_TYPE_BY_GGUF_ARCH: dict[str, str] = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "phi3": "phi3",
    "deepseek2": "deepseek_v2",
    "gpt-oss": "gpt_oss",
    "llama4": "llama4_text",
}

_FILE_TYPE_BY_ID: dict[int, str] = {
    ft.ftype_id: name for name, ft in GGUF_FILE_TYPES.items()
}
_GEMMA3_SLIDING_PATTERN = 6  # llama.cpp: every 6th Gemma 3 layer is global
# llama.cpp src/models/llama4.cpp: without a sliding_window key, 8192-token chunks
# on 3 of every 4 layers; gpt-oss (set_swa_pattern(2)): even layers slide.
_LLAMA4_CHUNK_TOKENS = 8192
_LLAMA4_CHUNK_PATTERN = 4


@dataclass(frozen=True, slots=True)
class GgufTensor:
    """One entry of a GGUF tensor table: name, ggml type name and shape (ne0 first)."""

    name: str
    ggml_type: str
    shape: tuple[int, ...]


def model_spec_from_gguf(
    metadata: Mapping[str, Any],
    tensors: Sequence[GgufTensor],
    *,
    model_id: str = "custom",
    name: str | None = None,
    file_bytes: int = 0,
    metadata_bytes: int = 0,
) -> ModelSpec:
    """Build a ``ModelSpec`` from GGUF metadata and its tensor table, or raise SpecError.

    ``tensors`` is the whole model's table (every part of a split file);
    ``file_bytes`` the size of the file(s), kept as the own format's artifact size;
    ``metadata_bytes`` the size of its key/value block, which then sizes the header
    of every other format instead of an estimate from the vocabulary.
    """
    try:
        return _parse(metadata, tensors, model_id, name, file_bytes, metadata_bytes)
    except SpecError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError, IndexError) as exc:
        raise SpecError(f"GGUF metadata cannot be read ({exc})") from exc


class _Meta:
    """Typed reads of ``{arch}.*`` keys with errors that name the key."""

    def __init__(self, metadata: Mapping[str, Any], arch: str) -> None:
        self.metadata = metadata
        self.arch = arch

    def key(self, suffix: str) -> str:
        return f"{self.arch}.{suffix}"

    def opt_int(
        self, suffix: str, *, maximum: int, minimum: int = 1, per_layer: bool = False
    ) -> int | None:
        key = self.key(suffix)
        value = self.metadata.get(key)
        if value is None:
            return None
        if per_layer and isinstance(value, list) and value:
            # Per-layer arrays (head counts that vary by layer): size by the largest.
            value = max(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{key}: must be a whole number, got {str(value)[:40]!r}")
        if not minimum <= value <= maximum:
            raise SpecError(
                f"{key}: {value} is out of range ({minimum} to {maximum:,})"
            )
        return value

    def int(self, suffix: str, *, maximum: int, per_layer: bool = False) -> int:
        value = self.opt_int(suffix, maximum=maximum, per_layer=per_layer)
        if value is None:
            raise SpecError(
                f"{self.key(suffix)}: missing from the GGUF metadata; the file was "
                "not written by llama.cpp's converter, or is incomplete"
            )
        return value


def _tensor_table(
    tensors: Sequence[GgufTensor],
) -> tuple[dict[str, GgufTensor], tuple[tuple[str, str, int], ...]]:
    by_name: dict[str, GgufTensor] = {}
    stored: list[tuple[str, str, int]] = []
    for t in tensors:
        if t.ggml_type not in GGML_TYPES:
            raise SpecError(
                f"tensor {t.name}: ggml type {t.ggml_type!r} is unknown to the planner"
            )
        if not t.shape or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in t.shape
        ):
            raise SpecError(f"tensor {t.name}: invalid shape {t.shape!r}")
        if t.name in by_name:
            raise SpecError(f"tensor {t.name}: listed twice in the tensor table")
        try:
            n_bytes = ggml_tensor_bytes(t.ggml_type, tuple(t.shape))
        except ValueError as exc:
            raise SpecError(f"tensor {t.name}: {exc}") from None
        by_name[t.name] = t
        stored.append((t.name, t.ggml_type, n_bytes))
    return by_name, tuple(stored)


def _need(by_name: Mapping[str, GgufTensor], name: str) -> GgufTensor:
    t = by_name.get(name)
    if t is None:
        raise SpecError(
            f"tensor {name}: missing from the GGUF tensor table; the file is "
            "incomplete (a split part missing?) or not a supported decoder"
        )
    return t


def _dim(t: GgufTensor, axis: int, maximum: int) -> int:
    if axis >= len(t.shape):
        raise SpecError(
            f"tensor {t.name}: expected {axis + 1}+ dimensions, got {t.shape}"
        )
    value = t.shape[axis]
    if value > maximum:
        raise SpecError(f"tensor {t.name}: dimension {value:,} is implausibly large")
    return value


def _parse(
    metadata: Mapping[str, Any],
    tensors: Sequence[GgufTensor],
    model_id: str,
    name: str | None,
    file_bytes: int,
    metadata_bytes: int,
) -> ModelSpec:
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise SpecError(
            "general.architecture: missing from the GGUF metadata; this is not a "
            "llama.cpp model file"
        )
    model_type = MODEL_TYPE_BY_GGUF_ARCH.get(arch)
    if model_type is None:
        known = ", ".join(sorted(MODEL_TYPE_BY_GGUF_ARCH))
        raise SpecError(
            f"general.architecture: {arch!r} is not an architecture the planner can "
            f"size; supported: {known}"
        )
    meta = _Meta(metadata, arch)
    notes: list[str] = []
    by_name, stored = _tensor_table(tensors)

    embd = _need(by_name, "token_embd.weight")
    hidden = _dim(embd, 0, MAX_HIDDEN_SIZE)
    vocab = _dim(embd, 1, MAX_VOCAB_SIZE) if len(embd.shape) > 1 else 0
    if vocab < 1:
        raise SpecError("tensor token_embd.weight: expected [hidden, vocab]")
    declared_hidden = meta.opt_int("embedding_length", maximum=MAX_HIDDEN_SIZE)
    if declared_hidden is not None and declared_hidden != hidden:
        raise SpecError(
            f"{meta.key('embedding_length')}: {declared_hidden} disagrees with "
            f"token_embd.weight ({hidden}); the file is inconsistent"
        )
    layers = meta.int("block_count", maximum=MAX_LAYERS)
    for i in (0, layers - 1):
        _need(by_name, f"blk.{i}.attn_norm.weight")
    heads = meta.int("attention.head_count", maximum=MAX_HEADS, per_layer=True)
    kv_heads = (
        meta.opt_int("attention.head_count_kv", maximum=MAX_HEADS, per_layer=True)
        or heads
    )
    if kv_heads > heads or heads % kv_heads:
        raise SpecError(
            f"{meta.key('attention.head_count_kv')} ({kv_heads}) must divide "
            f"{meta.key('attention.head_count')} ({heads})"
        )
    head_dim = meta.opt_int("attention.key_length", maximum=MAX_HEAD_DIM)
    v_head_dim = meta.opt_int("attention.value_length", maximum=MAX_HEAD_DIM)
    if head_dim is None:
        if hidden % heads:
            raise SpecError(
                f"{meta.key('attention.key_length')}: missing, and "
                f"{meta.key('attention.head_count')} ({heads}) does not divide the "
                f"hidden size ({hidden})"
            )
        head_dim = hidden // heads
    v_head_dim = v_head_dim or head_dim
    max_pos = meta.opt_int("context_length", maximum=MAX_POSITIONS)
    if max_pos is None:
        notes.append(f"{meta.key('context_length')} missing; assumed 4,096 positions")
        max_pos = 4096

    def has(suffix: str, layer: int = 0) -> bool:
        return f"blk.{layer}.{suffix}" in by_name

    # Experts: a layer with a router is a mixture-of-experts layer.
    moe_layers = tuple(has("ffn_gate_inp.weight", i) for i in range(layers))
    first_moe = next((i for i, m in enumerate(moe_layers) if m), None)
    n_experts = top_k = expert_ff = shared_ff = n_shared = 0
    shared_gate = router_bias = False
    if first_moe is not None:
        router = _need(by_name, f"blk.{first_moe}.ffn_gate_inp.weight")
        n_experts = _dim(router, 1, MAX_EXPERTS)
        top_k = meta.int("expert_used_count", maximum=MAX_EXPERTS)
        if top_k > n_experts:
            raise SpecError(
                f"{meta.key('expert_used_count')} ({top_k}) exceeds the "
                f"{n_experts} experts of blk.{first_moe}.ffn_gate_inp.weight"
            )
        declared = meta.opt_int("expert_count", maximum=MAX_EXPERTS)
        if declared is not None and declared != n_experts:
            raise SpecError(
                f"{meta.key('expert_count')}: {declared} disagrees with the router "
                f"tensor ({n_experts} experts); the file is inconsistent"
            )
        down = _need(by_name, f"blk.{first_moe}.ffn_down_exps.weight")
        expert_ff = _dim(down, 0, MAX_INTERMEDIATE_SIZE)
        shexp = by_name.get(f"blk.{first_moe}.ffn_down_shexp.weight")
        if shexp is not None:
            shared_ff = _dim(shexp, 0, MAX_INTERMEDIATE_SIZE)
            n_shared = meta.opt_int("expert_shared_count", maximum=MAX_EXPERTS) or 1
        shared_gate = has("ffn_gate_inp_shexp.weight", first_moe)
        router_bias = has("exp_probs_b.bias", first_moe)

    first_dense = next((i for i, m in enumerate(moe_layers) if not m), None)
    if first_dense is not None:
        intermediate = _dim(
            _need(by_name, f"blk.{first_dense}.ffn_down.weight"),
            0,
            MAX_INTERMEDIATE_SIZE,
        )
    else:
        intermediate = (
            meta.opt_int("feed_forward_length", maximum=MAX_INTERMEDIATE_SIZE)
            or expert_ff
        )

    # Multi-head latent attention (DeepSeek-V2/V3): dimensions from the tensors.
    kv_lora = q_lora = nope = rope = 0
    mla = has("attn_kv_a_mqa.weight")
    if mla:
        kv_lora = _dim(
            _need(by_name, "blk.0.attn_kv_a_norm.weight"), 0, MAX_HIDDEN_SIZE
        )
        kv_a = _need(by_name, "blk.0.attn_kv_a_mqa.weight")
        rope = _dim(kv_a, 1, MAX_HIDDEN_SIZE) - kv_lora
        if has("attn_q_a.weight"):
            q_lora = _dim(_need(by_name, "blk.0.attn_q_a.weight"), 1, MAX_HIDDEN_SIZE)
        if has("attn_k_b.weight"):
            nope = _dim(_need(by_name, "blk.0.attn_k_b.weight"), 0, MAX_HEAD_DIM)
            v_head_dim = _dim(_need(by_name, "blk.0.attn_v_b.weight"), 1, MAX_HEAD_DIM)
        else:
            # Older conversions keep kv_b whole: [lora, heads * (nope + v)].
            kv_b = _need(by_name, "blk.0.attn_kv_b.weight")
            per_head = _dim(kv_b, 1, MAX_HIDDEN_SIZE) // heads
            v_head_dim = (
                meta.opt_int("attention.value_length_mla", maximum=MAX_HEAD_DIM)
                or v_head_dim
            )
            nope = per_head - v_head_dim
        if rope < 1 or nope < 1:
            raise SpecError(
                "blk.0.attn_kv_a_mqa.weight: its shape does not fit multi-head latent "
                "attention (kv_lora_rank + rope dimensions)"
            )
        head_dim = nope + rope
        kv_heads = heads

    rope_freqs = by_name.get("rope_freqs.weight")
    rope_long = by_name.get("rope_factors_long.weight")
    rope_len = rope_freqs.shape[0] if rope_freqs else 0
    rope_factor_tensors = 0
    if rope_long is not None:
        rope_len, rope_factor_tensors = rope_long.shape[0], 2

    window = meta.opt_int("attention.sliding_window", minimum=0, maximum=MAX_POSITIONS)
    if arch == "llama4" and window is None:
        window = _LLAMA4_CHUNK_TOKENS
    window = window or None  # 0: no window (llama.cpp's "all layers full")
    sliding: tuple[bool, ...] = (False,) * layers
    if window is not None:
        if arch == "llama4":
            sliding = tuple((i + 1) % _LLAMA4_CHUNK_PATTERN != 0 for i in range(layers))
        elif arch == "gpt-oss":
            sliding = tuple(i % 2 == 0 for i in range(layers))
        elif arch == "gemma2":
            sliding = tuple(i % 2 == 0 for i in range(layers))
        elif arch == "gemma3":
            pattern = (
                meta.opt_int("attention.sliding_window_pattern", maximum=MAX_LAYERS)
                or _GEMMA3_SLIDING_PATTERN
            )
            sliding = tuple((i + 1) % pattern != 0 for i in range(layers))
        else:
            sliding = (True,) * layers

    fused_qkv = has("attn_qkv.weight")
    fused_gate_up = first_dense is not None and not has("ffn_gate.weight", first_dense)
    if model_type == "llama" and n_experts:
        model_type = "mixtral"

    stored_format = ""
    file_type = metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        ftype_name = _FILE_TYPE_BY_ID.get(file_type)
        if ftype_name is not None:
            stored_format = f"gguf-{ftype_name}"
    if not stored_format:
        notes.append(
            "general.file_type missing or unknown: the file's own format cannot be "
            "named, so no format is sized from its stored tensors"
        )

    spec = ModelSpec(
        model_id=str(model_id),
        name=str(name) if name else str(model_id),
        model_type=model_type,
        gguf_arch=arch,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        v_head_dim=v_head_dim,
        intermediate_size=intermediate,
        max_position_embeddings=max_pos,
        tie_word_embeddings="output.weight" not in by_name,
        qkv_bias=has("attn_q.bias") or has("attn_qkv.bias"),
        attention_output_bias=has("attn_output.bias"),
        mlp_bias=first_dense is not None and has("ffn_down.bias", first_dense),
        qk_norm=has("attn_q_norm.weight") and not mla,
        sandwich_norms=has("post_attention_norm.weight"),
        fused_qkv=fused_qkv,
        fused_gate_up=fused_gate_up,
        rope_freqs_length=rope_len,
        rope_factor_tensors=rope_factor_tensors,
        sliding_window=window if any(sliding) else None,
        sliding_layers=sliding,
        num_experts=n_experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=expert_ff,
        num_shared_experts=n_shared,
        shared_expert_intermediate_size=shared_ff,
        shared_expert_gate=shared_gate,
        router_bias=router_bias,
        expert_biases=first_moe is not None and has("ffn_gate_inp.bias", first_moe),
        attention_sinks=has("attn_sinks.weight"),
        moe_layers=moe_layers,
        kv_lora_rank=kv_lora,
        q_lora_rank=q_lora,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        notes=tuple(notes),
        stored_format=stored_format,
        stored_tensors=stored,
        stored_file_bytes=max(0, int(file_bytes)),
        stored_metadata_bytes=max(0, int(metadata_bytes)),
    )
    return replace(spec, notes=spec.notes + _compare_with_inventory(spec, by_name))


def _compare_with_inventory(
    spec: ModelSpec, by_name: Mapping[str, GgufTensor]
) -> tuple[str, ...]:
    """Notes where the planner's tensors and the file's disagree (name or shape)."""
    inventory = {t.name: t.shape for t in tensor_inventory(spec)}
    extra = sorted(n for n in by_name if n not in inventory)
    missing = sorted(n for n in inventory if n not in by_name)
    reshaped = sorted(
        n
        for n, shape in inventory.items()
        if n in by_name and tuple(by_name[n].shape) != shape
    )
    notes = []
    if extra:
        notes.append(
            f"{len(extra)} tensor(s) of the file are not in the planner's model "
            f"(e.g. {extra[0]}): counted in the file's own format only"
        )
    if missing or reshaped:
        first = (missing or reshaped)[0]
        notes.append(
            f"{len(missing) + len(reshaped)} tensor(s) the planner models differ from "
            f"the file (e.g. {first}): formats other than the file's own are estimates"
        )
    return tuple(notes)
