"""Which ggml type llama.cpp's quantizer gives each tensor, and the GGUF file size.

This re-states, in our own terms, the mixture rules of llama.cpp's
``src/llama-quant.cpp`` (``llama_tensor_get_type`` and
``tensor_type_fallback``): for a file type such as Q4_K_M most tensors get the
default type (Q4_K), a few sensitive ones get more bits (the output matrix,
``attn_v`` and ``ffn_down`` on the "use more bits" layers, ...), and a tensor
whose rows do not fill whole blocks falls back to a type with 32-element blocks.
Tensors are visited in llama.cpp's order (by layer number, then by name),
because some rules count how many ``attn_v`` tensors came before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .ggml import GGML_TYPES
from .gguf_types import GGUF_FALLBACK_TYPES, gguf_file_type
from .gguf_types import GGUF_FILE_TYPES as GGUF_FILE_TYPES  # re-exported for callers
from .spec import ModelSpec
from .tensors import EMBEDDING, TensorInfo, tensor_inventory

# File types whose every non-output tensor rule lives in the "very low bit" branch.
_IQ2_GROUP = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
_OUTPUT_Q5K_GROUP = frozenset(
    {"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
)
_MOE8_ATTN_OUT_Q5K = frozenset(
    {
        "Q2_K",
        "IQ3_XS",
        "IQ3_XXS",
        "Q3_K_S",
        "Q3_K_M",
        "IQ4_NL",
        "Q4_K_S",
        "Q4_K_M",
        "IQ3_S",
        "IQ3_M",
        "IQ4_XS",
    }
)

# Categories, as llama.cpp matches them by substring of the tensor name.
_OUTPUT, _TOKEN_EMBD, _QKV, _KV_B, _V, _K, _Q, _ATTN_OUT = range(8)
_FFN_UP, _FFN_GATE, _FFN_DOWN, _OTHER = range(8, 12)
_ATTN_V_LIKE = frozenset({_V, _QKV, _KV_B})


@lru_cache(maxsize=65536)
def _category(name: str) -> int:
    if name == "output.weight":
        return _OUTPUT
    if name == "token_embd.weight":
        return _TOKEN_EMBD
    for needle, cat in (
        ("attn_qkv.weight", _QKV),
        ("attn_kv_b.weight", _KV_B),
        ("attn_v.weight", _V),
        ("attn_k.weight", _K),
        ("attn_q.weight", _Q),
        ("attn_output.weight", _ATTN_OUT),
        ("ffn_up", _FFN_UP),
        ("ffn_gate", _FFN_GATE),
        ("ffn_down", _FFN_DOWN),
    ):
        if needle in name:
            return cat
    return _OTHER


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's pattern: first and last eighth of layers, and every third between."""
    eighth = n_layers // 8
    return (
        i_layer < eighth or i_layer >= 7 * n_layers // 8 or (i_layer - eighth) % 3 == 2
    )


def _is_70b_class(spec: ModelSpec) -> bool:
    """llama.cpp's LLM_TYPE_70B (80-layer Llama with GQA, 80-layer Qwen2)."""
    if spec.num_layers != 80:
        return False
    if spec.gguf_arch == "llama":
        return spec.num_attention_heads != spec.num_kv_heads
    return spec.gguf_arch == "qwen2"


def llama_order(tensors: Sequence[TensorInfo]) -> list[TensorInfo]:
    """Tensors in llama.cpp's loader order: by layer (non-layer first), then name."""
    return sorted(tensors, key=lambda t: (-1 if t.layer is None else t.layer, t.name))


class _Mixer:
    """One pass of llama-quantize over a model: counters plus the rules."""

    def __init__(self, spec: ModelSpec, ftype: str, imatrix: bool) -> None:
        self.spec = spec
        self.ftype = ftype
        self.imatrix = imatrix
        self.n_expert = max(1, spec.num_experts)
        self.n_gqa = spec.n_gqa
        self.is_70b = _is_70b_class(spec)
        self.n_attention_wv = 0
        self.n_layers = spec.num_layers
        self.i_attention_wv = 0
        self.i_ffn_down = 0
        self.i_ffn_gate = 0
        self.i_ffn_up = 0
        self.n_fallback = 0
        self.tied = True

    def _layer(self, t: TensorInfo, counter: int) -> int:
        # For MoE models llama.cpp reads the layer from the name; else it counts.
        if self.n_expert > 1 and t.layer is not None:
            return t.layer
        return counter

    def choose(self, t: TensorInfo, cat: int, default: str) -> str:
        """The type llama.cpp's mixture rules give ``t`` (before any fallback)."""
        f = self.ftype
        new = default
        if cat == _OUTPUT or (self.tied and cat == _TOKEN_EMBD):
            block = GGML_TYPES[new].block_size
            if f == "MXFP4_MOE" or t.shape[0] % block:
                return "Q8_0"
            if f in _OUTPUT_Q5K_GROUP:
                return "Q5_K"
            return new if new == "Q8_0" else "Q6_K"
        if f == "MXFP4_MOE":
            return "MXFP4" if len(t.shape) > 2 and t.shape[2] > 1 else "Q8_0"
        if cat == _TOKEN_EMBD:
            if f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                return "Q2_K"
            if f in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
                return "IQ3_S"
            if f in ("TQ1_0", "TQ2_0"):
                return "Q4_K"
            return new
        if f in _IQ2_GROUP:
            return self._very_low_bit(cat, new)
        if cat in _ATTN_V_LIKE:
            return self._attn_v(new)
        if cat == _K:
            if self.n_expert == 8:
                return "Q8_0"
            return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(f, new)
        if cat == _Q:
            return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(f, new)
        if cat == _FFN_DOWN:
            i_layer = self._layer(t, self.i_ffn_down)
            self.i_ffn_down += 1
            return self._ffn_down(new, i_layer)
        if cat == _ATTN_OUT:
            if self.n_expert == 8:
                return "Q5_K" if f in _MOE8_ATTN_OUT_Q5K else new
            return {
                "Q2_K": "Q3_K",
                "IQ3_XXS": "IQ3_S",
                "Q3_K_M": "Q4_K",
                "Q3_K_L": "Q5_K",
                "IQ3_M": "Q4_K",
            }.get(f, new)
        if cat in (_FFN_GATE, _FFN_UP):
            if cat == _FFN_GATE:
                i_layer = self._layer(t, self.i_ffn_gate)
                self.i_ffn_gate += 1
            else:
                i_layer = self._layer(t, self.i_ffn_up)
                self.i_ffn_up += 1
            n = self.n_layers
            if f == "IQ3_XS" and n // 8 <= i_layer < 7 * n // 8:
                return "IQ3_XXS"
        return new

    def _very_low_bit(self, cat: int, new: str) -> str:
        f = self.ftype
        mid = "IQ3_S" if f in ("IQ2_S", "IQ2_M") else "Q2_K"
        if cat in _ATTN_V_LIKE:
            self.i_attention_wv += 1
            return "Q4_K" if self.n_gqa >= 4 or self.n_expert >= 4 else mid
        if self.n_expert == 8 and cat == _K:
            return "Q4_K"
        if cat == _FFN_DOWN:
            # Here llama.cpp compares its running counter, even for MoE models.
            first_eighth = self.i_ffn_down < self.n_layers // 8
            self.i_ffn_down += 1
            return mid if first_eighth else new
        if cat == _ATTN_OUT:
            if self.n_expert == 8:
                return "Q5_K"
            if f in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            if f in ("IQ2_S", "IQ2_M"):
                return "IQ3_S"
        return new

    def _attn_v(self, new: str) -> str:
        f, gqa4, i = self.ftype, self.n_gqa >= 4, self.i_attention_wv
        if f == "Q2_K":
            new = "Q4_K" if gqa4 else "Q3_K"
        elif f == "Q2_K_S" and gqa4:
            new = "Q4_K"
        elif f == "IQ3_XXS":
            new = "Q4_K" if gqa4 else ("IQ3_XXS" if self.imatrix else "IQ3_S")
        elif f in ("IQ3_XS", "IQ3_S") and gqa4:
            new = "Q4_K"
        elif f == "IQ3_M":
            new = "Q4_K"
        elif f == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif f == "Q3_K_L":
            new = "Q5_K"
        elif f in ("IQ4_NL", "IQ4_XS") and gqa4:
            new = "Q5_K"
        elif f in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, self.n_attention_wv):
            new = "Q6_K"
        elif f == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if self.is_70b and new in ("Q3_K", "Q4_K"):
            # 8 query heads share each attn_v: more bits there cost little.
            new = "Q5_K"
        if self.n_expert == 8:
            new = "Q8_0"
        self.i_attention_wv += 1
        return new

    def _ffn_down(self, new: str, i: int) -> str:
        f, n = self.ftype, self.n_layers
        if f == "Q2_K":
            return "Q3_K"
        if f == "Q2_K_S":
            return "Q4_K" if i < n // 8 else new
        if f == "IQ3_XXS" and not self.imatrix:
            return "Q4_K" if i < n // 8 else "Q3_K"
        if f == "Q3_K_M":
            return "Q5_K" if i < n // 16 else "Q4_K"
        if f == "IQ3_M" and (
            i < n // 8 or (self.n_expert == 8 and _use_more_bits(i, n))
        ):
            return "Q4_K"
        if f == "Q3_K_L":
            return "Q5_K"
        if f == "Q4_K_M":
            return "Q6_K" if _use_more_bits(i, n) else new
        if i < n // 8 and f in ("IQ4_NL", "IQ4_XS") and not self.imatrix:
            return "Q5_K"
        if f == "Q5_K_M" and _use_more_bits(i, n):
            return "Q6_K"
        if f == "Q4_K_S" and i < n // 8:
            return "Q5_K"
        if f in ("Q4_0", "Q5_0") and self.imatrix and i < n // 8:
            return "Q4_1" if f == "Q4_0" else "Q5_1"
        return new

    def fallback(self, t: TensorInfo, new: str) -> str:
        """Replace ``new`` when the tensor's rows do not fill whole blocks of it."""
        if t.shape[0] % GGML_TYPES[new].block_size == 0:
            return new
        self.n_fallback += 1
        alt = GGUF_FALLBACK_TYPES.get(new)
        if alt is None or t.shape[0] % GGML_TYPES[alt].block_size:
            return "F16"
        return alt


@dataclass(frozen=True, slots=True)
class GgufMixture:
    """Result of applying the rules: (tensor, ggml type) in file order, and counts."""

    tensors: tuple[tuple[TensorInfo, str], ...]
    n_fallback: int
    n_quantizable: int


def gguf_mixture(
    spec: ModelSpec, gguf_type: str, *, imatrix: bool | None = None, pure: bool = False
) -> GgufMixture:
    """Apply llama-quantize's rules for ``gguf_type`` to every tensor of ``spec``."""
    ft = gguf_file_type(gguf_type)
    use_imatrix = ft.needs_imatrix if imatrix is None else imatrix
    return _mixture(spec, ft.name, use_imatrix, pure)


@lru_cache(maxsize=256)
def _ordered(spec: ModelSpec) -> tuple[tuple[TensorInfo, int, bool], ...]:
    """Tensors in llama.cpp order with their category and quantizability."""
    out = []
    for t in llama_order(tensor_inventory(spec)):
        # Rules match on the name without its "blk.N." prefix: classify that once.
        suffix = t.name.split(".", 2)[2] if t.layer is not None else t.name
        out.append((t, *_classify(suffix, t.is_matrix)))
    return tuple(out)


@lru_cache(maxsize=4096)
def _classify(suffix: str, is_matrix: bool) -> tuple[int, bool]:
    """(category, quantizable) of a tensor from its name without the layer prefix."""
    quantizable = (
        is_matrix
        and suffix.endswith("weight")
        and "_norm.weight" not in suffix
        and "ffn_gate_inp.weight" not in suffix
    )
    return _category(suffix), quantizable


@lru_cache(maxsize=1024)
def _mixture(spec: ModelSpec, ftype: str, imatrix: bool, pure: bool) -> GgufMixture:
    ft = GGUF_FILE_TYPES[ftype]
    default = ft.default_type
    ordered = _ordered(spec)
    mixer = _Mixer(spec, ftype, imatrix)
    mixer.n_attention_wv = sum(1 for _, c, _ in ordered if c in _ATTN_V_LIKE)
    mixer.tied = all(c != _OUTPUT for _, c, _ in ordered)
    quantize = GGML_TYPES[default].is_quantized
    out: list[tuple[TensorInfo, str]] = []
    n_quantizable = 0
    # Only attn_v, ffn_down (and ffn_gate/up for IQ3_XS) depend on the layer or
    # on running counters; other tensors of one category and shape get one answer.
    by_layer = (
        _ATTN_V_LIKE
        | {_FFN_DOWN}
        | ({_FFN_GATE, _FFN_UP} if ftype == "IQ3_XS" else set())
    )
    memo: dict[tuple[int, tuple[int, ...]], tuple[str, bool]] = {}
    for t, cat, quantizable in ordered:
        if not quantizable:
            # convert_hf_to_gguf stores 1-D tensors, norms and routers as F32.
            out.append((t, "F32"))
            continue
        n_quantizable += 1
        new = default
        if quantize:
            key = (cat, t.shape)
            hit = None if cat in by_layer else memo.get(key)
            if hit is not None:
                new, fell_back = hit
                mixer.n_fallback += fell_back
            else:
                if not pure:
                    new = mixer.choose(t, cat, default)
                before = mixer.n_fallback
                new = mixer.fallback(t, new)
                memo[key] = (new, mixer.n_fallback > before)
        out.append((t, new))
    return GgufMixture(tuple(out), mixer.n_fallback, n_quantizable)


@lru_cache(maxsize=1024)
def gguf_tensor_sizes(
    spec: ModelSpec, gguf_type: str
) -> tuple[tuple[TensorInfo, str, int], ...]:
    """(tensor, ggml type, data bytes) for every tensor of a ``gguf_type`` file."""
    out = []
    for t, ty in gguf_mixture(spec, gguf_type).tensors:
        block, block_bytes = _BLOCKS[ty]
        # = ggml_tensor_bytes: after the fallback every row fills whole blocks.
        out.append((t, ty, t.n_elements // block * block_bytes))
    return tuple(out)


_BLOCKS = {name: (t.block_size, t.block_bytes) for name, t in GGML_TYPES.items()}


def gguf_tensor_types(
    spec: ModelSpec, gguf_type: str, *, imatrix: bool | None = None
) -> list[tuple[str, str]]:
    """(tensor name, ggml type) for every tensor of a ``gguf_type`` file, in file order."""
    return [
        (t.name, ty) for t, ty in gguf_mixture(spec, gguf_type, imatrix=imatrix).tensors
    ]


def gguf_fallback_count(spec: ModelSpec, gguf_type: str) -> int:
    """How many tensors llama-quantize must give a fallback type for ``gguf_type``."""
    return gguf_mixture(spec, gguf_type).n_fallback


def gguf_tensor_data_bytes(spec: ModelSpec, gguf_type: str) -> int:
    """Sum of the tensors' data bytes (no header, no alignment padding)."""
    return sum(n for _, _, n in gguf_tensor_sizes(spec, gguf_type))


def gguf_bits_per_weight(spec: ModelSpec, gguf_type: str) -> float:
    """Tensor data bits over parameters: the "bits/weight" of llama.cpp's tables."""
    mix = gguf_mixture(spec, gguf_type)
    n_params = sum(t.n_elements for t, _ in mix.tensors)
    return gguf_tensor_data_bytes(spec, gguf_type) * 8 / n_params


# Tensor types llama.cpp's CPU backend copies into an interleaved layout when it
# loads a model on an x86 CPU with AVX2 (ggml-cpu/repack.cpp,
# ``ggml_repack_get_optimal_repack_type``); with AVX-512 Q2_K too. Only matrices
# that are multiplied are repacked, not the token embedding (gathered by row),
# and only when their row count is a multiple of the interleave.
CPU_REPACK_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})
CPU_REPACK_TYPES_AVX512 = CPU_REPACK_TYPES | {"Q2_K"}
CPU_REPACK_ROWS = 8


@lru_cache(maxsize=1024)
def gguf_cpu_repack_bytes(
    spec: ModelSpec, gguf_type: str, *, avx512: bool = False
) -> int:
    """Bytes llama.cpp re-lays out for the CPU at load: a copy beside the mapped file."""
    types = CPU_REPACK_TYPES_AVX512 if avx512 else CPU_REPACK_TYPES
    return sum(
        n
        for t, ty, n in gguf_tensor_sizes(spec, gguf_type)
        if ty in types
        and t.role != EMBEDDING
        and len(t.shape) in (2, 3)
        and t.shape[1] % CPU_REPACK_ROWS == 0
    )
