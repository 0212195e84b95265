"""The integer grid shared by RTN and GPTQ: scales, zero points, round-to-nearest.

Conventions (those of the GPTQ checkpoint layout):

- ``w ≈ (q - zero) * scale`` with ``q`` in ``[0, 2**bits - 1]``;
- scales are stored as float16, so every grid is computed with the float16-rounded
  scale: what we quantize against is exactly what a loader dequantizes;
- zero points are kept in ``[1, 2**bits - 1]``: the GPTQ layout stores ``zero - 1``
  and the kernels of vLLM / exllama add the 1 back without wrapping, so a stored
  zero of 0 would be read back as ``2**bits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Smallest normal float16: smaller scales would lose precision when saved.
_MIN_SCALE = 2.0**-14


@dataclass
class QuantizedWeight:
    """One linear layer's integer weights plus the grid that maps them back."""

    intweight: torch.Tensor  # [out, in] int32 in [0, maxq], original column order
    scales: torch.Tensor  # [n_groups, out] float16
    zeros: torch.Tensor  # [n_groups, out] int32, the true zero point (not zero - 1)
    g_idx: torch.Tensor  # [in] int32: group of every input column
    bits: int
    group_size: int  # as in the format: -1 = one group per row

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float ``[out, in]`` weight these integers stand for."""
        g_idx = self.g_idx.long()
        scales = self.scales.float()[g_idx].t()  # [out, in]
        zeros = self.zeros.float()[g_idx].t()
        return ((self.intweight.float() - zeros) * scales).to(dtype)


def grid_params(
    w: torch.Tensor, bits: int, sym: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(scale, zero)`` for the rows of ``w`` ([rows, cols]), GPTQ-style.

    The range always includes 0 (as in GPTQ's quantizer) so that a zero weight stays
    exactly representable; returns float32 scales (already float16-rounded) and
    float32 integral zero points.
    """
    maxq = (1 << bits) - 1
    w = w.float()
    xmin = torch.clamp(w.amin(dim=1), max=0.0)
    xmax = torch.clamp(w.amax(dim=1), min=0.0)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = -xmax
    empty = (xmin == 0) & (xmax == 0)
    xmin = torch.where(empty, torch.full_like(xmin, -1.0), xmin)
    xmax = torch.where(empty, torch.full_like(xmax, 1.0), xmax)
    scale = _fp16_scale((xmax - xmin) / maxq)
    if sym:
        zero = torch.full_like(scale, float((maxq + 1) // 2))
        return scale, zero
    zero = torch.clamp(torch.round(-xmin / scale), 0, maxq)
    # A zero point of 0 cannot be stored (see module docstring): such rows are all
    # >= ~0, so spend the lowest level on 0 and spread the rest over [0, xmax].
    low = zero < 1
    if bool(low.any()):
        scale = torch.where(low, _fp16_scale(xmax / (maxq - 1)), scale)
        zero = torch.where(low, torch.ones_like(zero), zero)
    return scale, zero


def _fp16_scale(scale: torch.Tensor) -> torch.Tensor:
    """Clamp and round scales *up* to the float16 values that will be saved.

    Rounding up keeps the whole ``[xmin, xmax]`` range on the grid; rounding to
    nearest could shrink the grid below the range and clip its extreme weight.
    """
    scale = scale.clamp(min=_MIN_SCALE)
    half = scale.to(torch.float16)
    up = torch.nextafter(half, torch.full_like(half, float("inf")))
    return torch.where(half.float() < scale, up, half).float()


def quantize_int(
    w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int
) -> torch.Tensor:
    """Round ``w`` ([rows, cols]) onto the grid of per-row ``scale``/``zero``."""
    q = torch.round(w.float() / scale[:, None]) + zero[:, None]
    return q.clamp_(0, maxq)


def rtn_quantize(
    weight: torch.Tensor, bits: int, group_size: int, sym: bool = False
) -> QuantizedWeight:
    """Round-to-nearest quantization of a ``[out, in]`` weight, per group of inputs."""
    out_features, in_features = weight.shape
    group = in_features if group_size == -1 else group_size
    n_groups = in_features // group
    maxq = (1 << bits) - 1
    # [out, n_groups, group] -> rows of one group each
    rows = weight.float().reshape(out_features, n_groups, group)
    rows = rows.permute(1, 0, 2).reshape(n_groups * out_features, group)
    scale, zero = grid_params(rows, bits, sym)
    q = quantize_int(rows, scale, zero, maxq)
    intweight = (
        q.reshape(n_groups, out_features, group)
        .permute(1, 0, 2)
        .reshape(out_features, in_features)
    )
    g_idx = torch.arange(in_features, dtype=torch.int32) // group
    return QuantizedWeight(
        intweight=intweight.to(torch.int32),
        scales=scale.reshape(n_groups, out_features).to(torch.float16),
        zeros=zero.reshape(n_groups, out_features).to(torch.int32),
        g_idx=g_idx.to(weight.device),
        bits=bits,
        group_size=group_size,
    )
