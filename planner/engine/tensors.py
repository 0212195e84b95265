"""The tensors of a model, named as in GGUF, and its parameter counts.

Shapes are in ggml order (``ne0`` first), so a weight ``[in, out]`` is the
transpose of the PyTorch ``Linear.weight`` ``[out, in]``; expert tensors are 3-D
``[in, out, n_expert]`` as llama.cpp stacks them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from .spec import ModelSpec

# Roles a tensor plays; the parameter breakdown sums per role.
EMBEDDING = "embedding"
LM_HEAD = "lm_head"
ATTENTION = "attention"
MLP = "mlp"
EXPERTS = "experts"
SHARED_EXPERTS = "shared_experts"
ROUTER = "router"
NORM = "norm"
OTHER = "other"

# How tensor parallelism places a tensor: split across GPUs, copied to each, or
# split by key/value head (copied once the GPUs outnumber the kv heads).
TP_SHARD = "shard"
TP_REPLICATE = "replicate"
TP_KV = "kv"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor: GGUF name, ggml shape, role, layer, and how TP places it."""

    name: str
    shape: tuple[int, ...]
    role: str
    layer: int | None
    tp: str
    # (in_features, out_features, count) when this is a Linear weight that
    # GPTQ/AWQ/fp8/int8 quantize; None for embeddings, lm_head, norms, router.
    linear: tuple[int, int, int] | None = None
    n_elements: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_elements", math.prod(self.shape))

    @property
    def is_matrix(self) -> bool:
        """True when ggml sees two or more dimensions larger than one."""
        return len(self.shape) > 1 and max(self.shape[1:]) > 1


@dataclass(frozen=True, slots=True)
class ParameterBreakdown:
    """Parameter counts of a model, by role; ``active_per_token`` counts routed experts used."""

    total: int
    active_per_token: int
    embedding: int
    lm_head: int
    attention: int
    mlp: int
    experts: int
    active_experts: int
    shared_experts: int
    router: int
    norms: int
    other: int
    matmul_per_token: int

    def to_dict(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def tensor_inventory(spec: ModelSpec) -> list[TensorInfo]:
    """All tensors of the model with GGUF names and ggml shapes."""
    return list(_inventory(spec))


@lru_cache(maxsize=256)
def _inventory(spec: ModelSpec) -> tuple[TensorInfo, ...]:
    h = spec.hidden_size
    out: list[TensorInfo] = [
        TensorInfo("token_embd.weight", (h, spec.vocab_size), EMBEDDING, None, TP_SHARD)
    ]
    for i in range(spec.num_layers):
        out.extend(_attention_tensors(spec, i))
        out.extend(_mlp_tensors(spec, i))
    out.append(TensorInfo("output_norm.weight", (h,), NORM, None, TP_REPLICATE))
    if not spec.tie_word_embeddings:
        out.append(
            TensorInfo("output.weight", (h, spec.vocab_size), LM_HEAD, None, TP_SHARD)
        )
    if spec.rope_freqs_length and not spec.rope_factor_tensors:
        out.append(
            TensorInfo(
                "rope_freqs.weight",
                (spec.rope_freqs_length,),
                OTHER,
                None,
                TP_REPLICATE,
            )
        )
    if spec.rope_factor_tensors:
        for kind in ("long", "short"):
            out.append(
                TensorInfo(
                    f"rope_factors_{kind}.weight",
                    (spec.rope_freqs_length,),
                    OTHER,
                    None,
                    TP_REPLICATE,
                )
            )
    return tuple(out)


def _linear(
    name: str, n_in: int, n_out: int, role: str, layer: int, tp: str
) -> TensorInfo:
    return TensorInfo(name, (n_in, n_out), role, layer, tp, (n_in, n_out, 1))


def _attention_tensors(spec: ModelSpec, i: int) -> list[TensorInfo]:
    h = spec.hidden_size
    p = f"blk.{i}."
    heads, kv, hd, vd = (
        spec.num_attention_heads,
        spec.num_kv_heads,
        spec.head_dim,
        spec.v_head_dim,
    )
    t: list[TensorInfo] = [
        TensorInfo(p + "attn_norm.weight", (h,), NORM, i, TP_REPLICATE)
    ]
    if spec.is_mla:
        t.extend(_mla_tensors(spec, i))
    elif spec.fused_qkv:
        t.append(
            _linear(
                p + "attn_qkv.weight",
                h,
                heads * hd + kv * (hd + vd),
                ATTENTION,
                i,
                TP_SHARD,
            )
        )
    else:
        t.append(_linear(p + "attn_q.weight", h, heads * hd, ATTENTION, i, TP_SHARD))
        t.append(_linear(p + "attn_k.weight", h, kv * hd, ATTENTION, i, TP_KV))
        t.append(_linear(p + "attn_v.weight", h, kv * vd, ATTENTION, i, TP_KV))
    if spec.qkv_bias and not spec.is_mla:
        t.append(TensorInfo(p + "attn_q.bias", (heads * hd,), ATTENTION, i, TP_SHARD))
        t.append(TensorInfo(p + "attn_k.bias", (kv * hd,), ATTENTION, i, TP_KV))
        t.append(TensorInfo(p + "attn_v.bias", (kv * vd,), ATTENTION, i, TP_KV))
    if spec.qk_norm:
        t.append(TensorInfo(p + "attn_q_norm.weight", (hd,), NORM, i, TP_REPLICATE))
        t.append(TensorInfo(p + "attn_k_norm.weight", (hd,), NORM, i, TP_REPLICATE))
    t.append(_linear(p + "attn_output.weight", heads * vd, h, ATTENTION, i, TP_SHARD))
    if spec.attention_output_bias:
        t.append(TensorInfo(p + "attn_output.bias", (h,), ATTENTION, i, TP_REPLICATE))
    if spec.attention_sinks:
        t.append(TensorInfo(p + "attn_sinks.weight", (heads,), ATTENTION, i, TP_SHARD))
    if spec.sandwich_norms:
        t.append(
            TensorInfo(p + "post_attention_norm.weight", (h,), NORM, i, TP_REPLICATE)
        )
    return t


def _mla_tensors(spec: ModelSpec, i: int) -> list[TensorInfo]:
    h = spec.hidden_size
    p = f"blk.{i}."
    heads, nope, rope = (
        spec.num_attention_heads,
        spec.qk_nope_head_dim,
        spec.qk_rope_head_dim,
    )
    lora, vd = spec.kv_lora_rank, spec.v_head_dim
    t: list[TensorInfo] = []
    if spec.q_lora_rank:
        q = spec.q_lora_rank
        t.append(_linear(p + "attn_q_a.weight", h, q, ATTENTION, i, TP_REPLICATE))
        t.append(TensorInfo(p + "attn_q_a_norm.weight", (q,), NORM, i, TP_REPLICATE))
        t.append(
            _linear(
                p + "attn_q_b.weight", q, heads * (nope + rope), ATTENTION, i, TP_SHARD
            )
        )
    else:
        t.append(
            _linear(
                p + "attn_q.weight", h, heads * (nope + rope), ATTENTION, i, TP_SHARD
            )
        )
    t.append(
        _linear(p + "attn_kv_a_mqa.weight", h, lora + rope, ATTENTION, i, TP_REPLICATE)
    )
    t.append(TensorInfo(p + "attn_kv_a_norm.weight", (lora,), NORM, i, TP_REPLICATE))
    # convert_hf_to_gguf splits kv_b_proj [heads*(nope+v), lora] into per-head
    # k_b (transposed) and v_b, both 3-D; together they are one HF Linear.
    t.append(
        TensorInfo(
            p + "attn_k_b.weight",
            (nope, lora, heads),
            ATTENTION,
            i,
            TP_SHARD,
            (lora, heads * nope, 1),
        )
    )
    t.append(
        TensorInfo(
            p + "attn_v_b.weight",
            (lora, vd, heads),
            ATTENTION,
            i,
            TP_SHARD,
            (lora, heads * vd, 1),
        )
    )
    return t


def _mlp_tensors(spec: ModelSpec, i: int) -> list[TensorInfo]:
    h = spec.hidden_size
    p = f"blk.{i}."
    t: list[TensorInfo] = [
        TensorInfo(p + "ffn_norm.weight", (h,), NORM, i, TP_REPLICATE)
    ]
    if spec.moe_layers[i] and spec.num_experts:
        n, eff = spec.num_experts, spec.moe_intermediate_size
        t.append(TensorInfo(p + "ffn_gate_inp.weight", (h, n), ROUTER, i, TP_REPLICATE))
        if spec.router_bias:
            t.append(TensorInfo(p + "exp_probs_b.bias", (n,), ROUTER, i, TP_REPLICATE))
        if spec.expert_biases:
            t.append(TensorInfo(p + "ffn_gate_inp.bias", (n,), ROUTER, i, TP_REPLICATE))
            for part, width in (("gate", eff), ("up", eff), ("down", h)):
                t.append(
                    TensorInfo(
                        f"{p}ffn_{part}_exps.bias", (width, n), EXPERTS, i, TP_SHARD
                    )
                )
        for part, shape in (
            ("gate", (h, eff, n)),
            ("up", (h, eff, n)),
            ("down", (eff, h, n)),
        ):
            t.append(
                TensorInfo(
                    f"{p}ffn_{part}_exps.weight",
                    shape,
                    EXPERTS,
                    i,
                    TP_SHARD,
                    (shape[0], shape[1], n),
                )
            )
        sff = spec.shared_expert_intermediate_size
        if sff:
            if spec.shared_expert_gate:
                t.append(
                    TensorInfo(
                        p + "ffn_gate_inp_shexp.weight", (h,), ROUTER, i, TP_REPLICATE
                    )
                )
            t.append(
                _linear(
                    p + "ffn_gate_shexp.weight", h, sff, SHARED_EXPERTS, i, TP_SHARD
                )
            )
            t.append(
                _linear(p + "ffn_up_shexp.weight", h, sff, SHARED_EXPERTS, i, TP_SHARD)
            )
            t.append(
                _linear(
                    p + "ffn_down_shexp.weight", sff, h, SHARED_EXPERTS, i, TP_SHARD
                )
            )
    else:
        ff = spec.intermediate_size
        if spec.fused_gate_up:
            t.append(_linear(p + "ffn_up.weight", h, 2 * ff, MLP, i, TP_SHARD))
        else:
            t.append(_linear(p + "ffn_gate.weight", h, ff, MLP, i, TP_SHARD))
            t.append(_linear(p + "ffn_up.weight", h, ff, MLP, i, TP_SHARD))
        t.append(_linear(p + "ffn_down.weight", ff, h, MLP, i, TP_SHARD))
        if spec.mlp_bias:
            if not spec.fused_gate_up:
                t.append(TensorInfo(p + "ffn_gate.bias", (ff,), MLP, i, TP_SHARD))
            t.append(TensorInfo(p + "ffn_up.bias", (ff,), MLP, i, TP_SHARD))
            t.append(TensorInfo(p + "ffn_down.bias", (h,), MLP, i, TP_REPLICATE))
    if spec.sandwich_norms:
        t.append(TensorInfo(p + "post_ffw_norm.weight", (h,), NORM, i, TP_REPLICATE))
    return t


def parameter_breakdown(spec: ModelSpec) -> ParameterBreakdown:
    """Parameter counts by role, total and active per token."""
    return _breakdown(spec)


@lru_cache(maxsize=256)
def _breakdown(spec: ModelSpec) -> ParameterBreakdown:
    by_role: dict[str, int] = {}
    for t in _inventory(spec):
        by_role[t.role] = by_role.get(t.role, 0) + t.n_elements
    total = sum(by_role.values())
    experts = by_role.get(EXPERTS, 0)
    active_experts = (
        experts * spec.num_experts_per_tok // spec.num_experts
        if spec.num_experts
        else 0
    )
    active = total - experts + active_experts
    embedding = by_role.get(EMBEDDING, 0)
    lm_head = by_role.get(LM_HEAD, 0)
    # Weights multiplied per token: everything but the embedding lookup (a row
    # read), with the tied embedding counted once more as the output projection.
    matmul = active - embedding - by_role.get(NORM, 0) - by_role.get(OTHER, 0)
    if spec.tie_word_embeddings:
        matmul += embedding
    return ParameterBreakdown(
        total=total,
        active_per_token=active,
        embedding=embedding,
        lm_head=lm_head,
        attention=by_role.get(ATTENTION, 0),
        mlp=by_role.get(MLP, 0),
        experts=experts,
        active_experts=active_experts,
        shared_experts=by_role.get(SHARED_EXPERTS, 0),
        router=by_role.get(ROUTER, 0),
        norms=by_role.get(NORM, 0),
        other=by_role.get(OTHER, 0),
        matmul_per_token=matmul,
    )
