"""Bytes of a model's weights in a format: on disk (``artifact_bytes``) and loaded.

GGUF sizes come from llama.cpp's per-tensor mixture (``gguf_rules``); a spec
read from a GGUF file sizes that file's own format from its stored tensors. The
safetensors formats are sized tensor by tensor:

* fp32/fp16/bf16: every tensor at 4/2/2 bytes per element.
* fp8: Linear weights 1 byte + a per-tensor fp32 weight scale and input scale.
* int8 (W8A8): Linear weights 1 byte + one fp32 scale per output channel.
* GPTQ and RTN (GPTQ layout): ``qweight`` int32 ``[in*bits/32, out]``, ``qzeros``
  int32 ``[groups, out*bits/32]``, ``scales`` fp16 ``[groups, out]``, ``g_idx``
  int32 ``[in]``.
* AWQ (GEMM layout): ``qweight`` int32 ``[in, out*bits/32]``, ``qzeros`` int32
  ``[groups, out*bits/32]``, ``scales`` fp16 ``[groups, out]``.

In the quantized safetensors formats only the decoder's Linear layers are
quantized; embeddings, lm_head, norms, biases and MoE routers stay 16-bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .formats import FormatSpec, parse_format
from .gguf_file import gguf_file_bytes
from .gguf_rules import gguf_tensor_sizes
from .spec import ModelSpec
from .tensors import (
    OTHER,
    TP_KV,
    TP_REPLICATE,
    TP_SHARD,
    TensorInfo,
    tensor_inventory,
)

SAFETENSORS_BYTES_PER_TENSOR_HEADER = 120  # JSON entry: name, dtype, shape, offsets
INT32_BYTES = 4
FP16_BYTES = 2


@dataclass(frozen=True)
class WeightLayout:
    """A model's weight bytes in one format, by role and by tensor-parallel placement."""

    format_id: str
    weights_bytes: int
    artifact_bytes: int
    by_role: dict[str, int] = field(hash=False)
    shard_bytes: int = 0
    replicate_bytes: int = 0
    kv_bytes: int = 0

    def role_bytes(self, role: str) -> int:
        """Bytes of the tensors playing ``role`` (0 when none)."""
        return self.by_role.get(role, 0)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gptq_linear_bytes(n_in: int, n_out: int, bits: int, group: int) -> int:
    """Bytes of one GPTQ-packed Linear: qweight, qzeros, fp16 scales and g_idx."""
    groups = 1 if group == -1 else _ceil_div(n_in, group)
    qweight = _ceil_div(n_in * bits, 32) * n_out * INT32_BYTES
    qzeros = groups * _ceil_div(n_out * bits, 32) * INT32_BYTES
    scales = groups * n_out * FP16_BYTES
    g_idx = n_in * INT32_BYTES
    return qweight + qzeros + scales + g_idx


def awq_linear_bytes(n_in: int, n_out: int, bits: int, group: int) -> int:
    """Bytes of one AWQ (GEMM layout) Linear: qweight, qzeros and fp16 scales."""
    groups = 1 if group == -1 else _ceil_div(n_in, group)
    qweight = n_in * _ceil_div(n_out * bits, 32) * INT32_BYTES
    qzeros = groups * _ceil_div(n_out * bits, 32) * INT32_BYTES
    scales = groups * n_out * FP16_BYTES
    return qweight + qzeros + scales


def _safetensors_tensor(t: TensorInfo, fmt: FormatSpec) -> tuple[int, int]:
    """(bytes, number of stored tensors) for one tensor in a safetensors format."""
    n = t.n_elements
    if fmt.id == "fp32":
        return 4 * n, 1
    if fmt.family == "fp" and fmt.weight_bits == 16:
        return 2 * n, 1
    if t.linear is None:
        return FP16_BYTES * n, 1
    n_in, n_out, count = t.linear
    bits = fmt.weight_bits
    group = fmt.group_size if fmt.group_size is not None else -1
    if fmt.id == "fp8":
        return n + count * 8, 3 * count  # weight + fp32 weight_scale + input_scale
    if fmt.family == "int8":
        return n + count * n_out * 4, 2 * count
    if fmt.family in ("gptq", "rtn"):
        return count * gptq_linear_bytes(n_in, n_out, bits, group), 4 * count
    if fmt.family == "awq":
        return count * awq_linear_bytes(n_in, n_out, bits, group), 3 * count
    raise ValueError(f"no safetensors layout for format {fmt.id}")


def _as_format(fmt: FormatSpec | str) -> FormatSpec:
    return fmt if isinstance(fmt, FormatSpec) else parse_format(fmt)


@lru_cache(maxsize=256)
def _tensor_groups(spec: ModelSpec) -> tuple[tuple[TensorInfo, int], ...]:
    """Tensors that size alike (same shape, role, placement), with their counts."""
    first: dict[tuple[object, ...], TensorInfo] = {}
    counts: dict[tuple[object, ...], int] = {}
    for t in tensor_inventory(spec):
        key = (t.shape, t.role, t.tp, t.linear)
        first.setdefault(key, t)
        counts[key] = counts.get(key, 0) + 1
    return tuple((first[k], counts[k]) for k in first)


def _stored_sizes(spec: ModelSpec) -> list[tuple[TensorInfo, int, int]]:
    """The file's own tensors, exactly as stored, placed like the planner's alike."""
    known = {t.name: t for t in tensor_inventory(spec)}
    out = []
    for name, _ggml_type, n_bytes in spec.stored_tensors:
        t = known.get(name) or TensorInfo(name, (1,), OTHER, None, TP_REPLICATE)
        out.append((t, n_bytes, 1))
    return out


def weight_layout(spec: ModelSpec, fmt: FormatSpec | str) -> WeightLayout:
    """Weight bytes of ``spec`` in ``fmt``, broken down by role and TP placement."""
    return _layout(spec, _as_format(fmt))


@lru_cache(maxsize=4096)
def _layout(spec: ModelSpec, fmt: FormatSpec) -> WeightLayout:
    # (tensor, bytes of one, how many alike)
    sized: list[tuple[TensorInfo, int, int]] = []
    stored = 0
    own_format = fmt.id == spec.stored_format and bool(spec.stored_tensors)
    if own_format:
        sized = _stored_sizes(spec)
    elif fmt.family == "gguf":
        assert fmt.gguf_type is not None
        sized = [(t, n, 1) for t, _, n in gguf_tensor_sizes(spec, fmt.gguf_type)]
    else:
        for t, count in _tensor_groups(spec):
            n_bytes, n_stored = _safetensors_tensor(t, fmt)
            sized.append((t, n_bytes, count))
            stored += n_stored * count
    by_role: dict[str, int] = {}
    by_tp = {TP_SHARD: 0, TP_REPLICATE: 0, TP_KV: 0}
    total = 0
    for t, n_bytes, count in sized:
        by_role[t.role] = by_role.get(t.role, 0) + n_bytes * count
        by_tp[t.tp] += n_bytes * count
        total += n_bytes * count
    if own_format and spec.stored_file_bytes:
        artifact = spec.stored_file_bytes
    elif fmt.family == "gguf":
        assert fmt.gguf_type is not None
        artifact = gguf_file_bytes(spec, fmt.gguf_type)
    else:
        artifact = total + 8 + stored * SAFETENSORS_BYTES_PER_TENSOR_HEADER
    return WeightLayout(
        fmt.id,
        total,
        artifact,
        by_role,
        by_tp[TP_SHARD],
        by_tp[TP_REPLICATE],
        by_tp[TP_KV],
    )


def artifact_bytes(spec: ModelSpec, fmt: FormatSpec | str) -> int:
    """Size of the saved model file(s) in ``fmt`` (header and padding included)."""
    return weight_layout(spec, fmt).artifact_bytes


def weights_bytes(spec: ModelSpec, fmt: FormatSpec | str) -> int:
    """Bytes the weights take in accelerator memory once loaded (all GPUs together)."""
    return weight_layout(spec, fmt).weights_bytes


def tensor_parallel_weight_shares(
    spec: ModelSpec, fmt: FormatSpec | str, tensor_parallel: int
) -> list[int]:
    """Weight bytes on each of ``tensor_parallel`` GPUs (vLLM-style tensor parallelism).

    Split tensors are divided evenly; norms, routers and MLA down-projections are
    copied to every GPU; key/value projections are divided by kv head and copied
    once the GPUs outnumber the kv heads.
    """
    if tensor_parallel < 1:
        raise ValueError("tensor_parallel must be at least 1")
    layout = weight_layout(spec, fmt)
    n = tensor_parallel
    kv_split = min(n, spec.num_kv_heads)
    shares = []
    for rank in range(n):
        shard = layout.shard_bytes // n + (1 if rank < layout.shard_bytes % n else 0)
        kv_rank = rank % kv_split
        kv = layout.kv_bytes // kv_split + (
            1 if kv_rank < layout.kv_bytes % kv_split else 0
        )
        shares.append(shard + kv + layout.replicate_bytes)
    return shares


def replicated_weight_bytes(
    spec: ModelSpec, fmt: FormatSpec | str, tensor_parallel: int
) -> int:
    """Bytes held more than once across the GPUs: what the shares add to the total.

    Assumes a valid tensor-parallel size, where the kv heads and the GPUs divide
    one another (vLLM's own requirement).
    """
    layout = weight_layout(spec, fmt)
    n = tensor_parallel
    kv_split = min(n, spec.num_kv_heads)
    return (n - 1) * layout.replicate_bytes + layout.kv_bytes * (n // kv_split - 1)
