"""Int32 packings of the two checkpoint layouts we write and read.

GPTQ layout (AutoGPTQ / GPTQModel "gptq" checkpoint format, read by transformers
and vLLM):

- ``qweight`` int32 ``[in * bits / 32, out]``: every column is the little-endian bit
  stream of that output row's ``in`` integers (3-bit values straddle words);
- ``qzeros`` int32 ``[n_groups, out * bits / 32]``: ``zero - 1`` packed the same way
  along the output dimension (the historic off-by-one of the format);
- ``scales`` float16 ``[n_groups, out]``, ``g_idx`` int32 ``[in]``.

AWQ GEMM layout (autoawq ``WQLinear_GEMM``, 4-bit only):

- ``qweight`` int32 ``[in, out / 8]``, ``qzeros`` int32 ``[n_groups, out / 8]``,
  nibble ``i`` of a word holding output column ``8 * word + AWQ_ORDER[i]``;
- ``scales`` float16 ``[n_groups, out]``; zeros stored as they are.
"""

from __future__ import annotations

import math

import torch

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
_MASK32 = 0xFFFFFFFF


def _block(bits: int) -> tuple[int, int]:
    """(values, words) of the smallest run of values that fills whole int32 words."""
    g = math.gcd(bits, 32)
    return 32 // g, bits // g


def pack_rows(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack ``[n, m]`` integers in ``[0, 2**bits)`` along dim 0 into int32 words."""
    n_values, words = _block(bits)
    n, m = values.shape
    if n % n_values:
        raise ValueError(f"{n} values do not fill whole words at {bits} bits")
    v = values.to(torch.int64).reshape(n // n_values, n_values, m)
    out = torch.zeros(n // n_values, words, m, dtype=torch.int64, device=v.device)
    for j in range(n_values):
        offset = bits * j
        word, shift = divmod(offset, 32)
        out[:, word] |= (v[:, j] << shift) & _MASK32
        if shift + bits > 32:  # the value continues in the next word
            out[:, word + 1] |= v[:, j] >> (32 - shift)
    out = out.reshape(-1, m)
    # Reinterpret the unsigned 32-bit patterns as two's-complement int32.
    return torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)


def unpack_rows(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_rows`: int32 ``[n * bits / 32, m]`` -> int32 ``[n, m]``."""
    n_values, words = _block(bits)
    rows, m = packed.shape
    w = (packed.to(torch.int64) & _MASK32).reshape(rows // words, words, m)
    maxq = (1 << bits) - 1
    vals = []
    for j in range(n_values):
        offset = bits * j
        word, shift = divmod(offset, 32)
        v = w[:, word] >> shift
        if shift + bits > 32:
            v = v | (w[:, word + 1] << (32 - shift))
        vals.append(v & maxq)
    return torch.stack(vals, dim=1).reshape(-1, m).to(torch.int32)


def pack_gptq(
    intweight: torch.Tensor, zeros: torch.Tensor, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[out, in]`` ints and ``[n_groups, out]`` true zeros -> (qweight, qzeros)."""
    qweight = pack_rows(intweight.t().contiguous(), bits)
    if bool((zeros < 1).any()):
        raise ValueError("GPTQ layout cannot store a zero point of 0")
    qzeros = pack_rows((zeros - 1).t().contiguous(), bits).t().contiguous()
    return qweight, qzeros


def unpack_gptq(
    qweight: torch.Tensor, qzeros: torch.Tensor, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(qweight, qzeros) -> ``[out, in]`` ints and ``[n_groups, out]`` true zeros."""
    intweight = unpack_rows(qweight, bits).t().contiguous()
    zeros = unpack_rows(qzeros.t().contiguous(), bits).t().contiguous() + 1
    return intweight, zeros


def dequantize_gptq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    bits: int,
) -> torch.Tensor:
    """A GPTQ-layout layer as a float32 ``[out, in]`` weight."""
    intweight, zeros = unpack_gptq(qweight, qzeros, bits)
    g = g_idx.long()
    return (intweight.float() - zeros.float()[g].t()) * scales.float()[g].t()


def pack_awq(
    intweight: torch.Tensor, zeros: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """4-bit ``[out, in]`` ints and ``[n_groups, out]`` zeros -> AWQ GEMM tensors."""
    return _pack_awq_cols(intweight.t().contiguous()), _pack_awq_cols(zeros)


def _pack_awq_cols(values: torch.Tensor) -> torch.Tensor:
    n, m = values.shape
    v = values.to(torch.int64).reshape(n, m // 8, 8)
    out = torch.zeros(n, m // 8, dtype=torch.int64, device=v.device)
    for i, col in enumerate(AWQ_ORDER):
        out |= v[:, :, col] << (4 * i)
    return torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)


def _unpack_awq_cols(packed: torch.Tensor) -> torch.Tensor:
    n, words = packed.shape
    w = packed.to(torch.int64) & _MASK32
    out = torch.empty(n, words, 8, dtype=torch.int64, device=w.device)
    for i, col in enumerate(AWQ_ORDER):
        out[:, :, col] = (w >> (4 * i)) & 0xF
    return out.reshape(n, words * 8).to(torch.int32)


def unpack_awq(
    qweight: torch.Tensor, qzeros: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """AWQ GEMM (qweight, qzeros) -> ``[out, in]`` ints and ``[n_groups, out]`` zeros."""
    return _unpack_awq_cols(qweight).t().contiguous(), _unpack_awq_cols(qzeros)


def dequantize_awq(
    qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int
) -> torch.Tensor:
    """An AWQ-GEMM layer as a float32 ``[out, in]`` weight."""
    intweight, zeros = unpack_awq(qweight, qzeros)
    in_features = intweight.shape[1]
    group = in_features if group_size == -1 else group_size
    z = zeros.float().repeat_interleave(group, dim=0).t()
    s = scales.float().repeat_interleave(group, dim=0).t()
    return (intweight.float() - z) * s
