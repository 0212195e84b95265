"""GPTQ for one linear layer (Frantar et al., 2022, "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers"), written from the paper.

The layer's calibration inputs ``X`` give the Hessian of the layer-wise squared
error, ``H = 2 X Xᵀ / n``. Columns of ``W`` are quantized one at a time; the error
of each is spread over the not-yet-quantized columns through the Cholesky factor of
``H⁻¹``, which is what makes GPTQ beat round-to-nearest at the same grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from quantjobs.backends.torchq.quantizer import QuantizedWeight, grid_params


class HessianAccumulator:
    """Running ``2 X Xᵀ / n`` over the rows fed to one linear layer."""

    def __init__(self, in_features: int, device: torch.device) -> None:
        self.hessian = torch.zeros(
            in_features, in_features, dtype=torch.float32, device=device
        )
        self.rows = 0

    def add(self, inputs: torch.Tensor) -> None:
        """Add a batch of inputs ``[..., in_features]``."""
        x = inputs.reshape(-1, inputs.shape[-1]).to(self.hessian.device, torch.float32)
        self.hessian.addmm_(x.t(), x)
        self.rows += x.shape[0]

    def result(self) -> torch.Tensor:
        """The Hessian estimate (average over rows, times 2)."""
        if self.rows == 0:
            raise ValueError("no calibration rows reached this layer")
        return self.hessian * (2.0 / self.rows)


@dataclass(frozen=True)
class GptqStats:
    """How much squared error the solver left, for the job log."""

    loss: float  # Σ (w - q)² / 2d², d the Cholesky diagonal of H⁻¹ (GPTQ objective)
    damp: float  # dampening finally added to the diagonal (absolute)


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    group_size: int,
    sym: bool,
    desc_act: bool = False,
    damp_percent: float = 0.01,
    block_size: int = 128,
) -> tuple[QuantizedWeight, GptqStats]:
    """Quantize a ``[out, in]`` weight with GPTQ; returns integers and solver stats."""
    w = weight.detach().to(hessian.device, torch.float32).clone()
    out_features, in_features = w.shape
    h = hessian.clone()
    maxq = (1 << bits) - 1
    group = in_features if group_size == -1 else group_size
    per_row = group_size == -1
    # A block must hold whole groups so that each group's grid is computed from
    # columns that already carry the error feedback of every earlier column.
    block = block_size if per_row else max(block_size // group, 1) * group

    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0

    perm: torch.Tensor | None = None
    if desc_act:
        perm = torch.argsort(torch.diag(h), descending=True)
        w = w[:, perm]
        h = h[perm][:, perm]

    hinv, damp = _inverse_cholesky(h, damp_percent)

    # Work on Wᵀ ([in, out]): a column of W is then a contiguous row, and the
    # per-column error feedback is one fused, contiguous rank-1 update.
    wt = w.t().contiguous()
    q_all = torch.zeros_like(wt)
    n_groups = in_features // group
    scales = torch.zeros(n_groups, out_features, device=w.device)
    zeros = torch.zeros(n_groups, out_features, device=w.device)
    loss = torch.zeros((), device=w.device)
    scale, zero = torch.empty(0), torch.empty(0)
    if per_row:
        # One grid per output row, fixed up front from the whole (permuted) row.
        scale, zero = grid_params(w, bits, sym)
        scales[0], zeros[0] = scale, zero
    for i1 in range(0, in_features, block):
        i2 = min(i1 + block, in_features)
        w1 = wt[i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        inv_diag = (1.0 / torch.diag(hinv1)).tolist()
        with _single_thread(w.device):
            for i in range(i2 - i1):
                col = i1 + i
                if not per_row and col % group == 0:
                    scale, zero = grid_params(w1[i : i + group].t(), bits, sym)
                    scales[col // group] = scale
                    zeros[col // group] = zero
                w_col = w1[i]
                q = torch.round(w_col / scale).add_(zero).clamp_(0, maxq)
                q_all[col] = q
                err = (w_col - (q - zero) * scale).mul_(inv_diag[i])
                err1[i] = err
                # Feed this column's error forward to the rest of the block ...
                w1[i + 1 :].addr_(hinv1[i, i + 1 :], err, alpha=-1.0)
        loss += err1.pow(2).sum() / 2
        # ... and, once per block, to every column after it.
        wt[i2:].addmm_(hinv[i1:i2, i2:].t(), err1, alpha=-1.0)
    q_all = q_all.t()

    g_idx = torch.arange(in_features, device=w.device) // group
    if perm is not None:
        inv = torch.argsort(perm)
        q_all = q_all[:, inv]
        g_idx = g_idx[inv]
    quantized = QuantizedWeight(
        intweight=q_all.to(torch.int32),
        scales=scales.to(torch.float16),
        zeros=zeros.to(torch.int32),
        g_idx=g_idx.to(torch.int32),
        bits=bits,
        group_size=group_size,
    )
    return quantized, GptqStats(loss=float(loss), damp=damp)


@contextmanager
def _single_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread on CPU for the column loop's thousands of tiny ops.

    Each op touches a few thousand floats: waking a second thread costs more than
    the op (2 µs single-threaded vs ~40 µs with two threads on a quiet machine,
    ~10 ms on a busy one).
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _inverse_cholesky(
    h: torch.Tensor, damp_percent: float
) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor of ``(H + λI)⁻¹``; raises λ until H is positive definite.

    Calibration sets that are small compared with the layer width give a singular
    ``H``; GPTQ's fix is dampening, and a few retries with a larger λ are cheaper
    than failing the job.
    """
    mean_diag = float(torch.diag(h).mean())
    eye = torch.eye(h.shape[0], device=h.device, dtype=h.dtype)
    percent = damp_percent
    for _ in range(6):
        damp = percent * mean_diag
        chol, info = torch.linalg.cholesky_ex(h + damp * eye)
        if int(info) == 0:
            # (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ via one triangular solve: torch.cholesky_inverse
            # is ~100x slower on CPU for these sizes.
            linv = torch.linalg.solve_triangular(chol, eye, upper=False)
            hinv = linv.t() @ linv
            upper, info = torch.linalg.cholesky_ex(hinv, upper=True)
            if int(info) == 0:
                return upper, damp
        percent *= 10.0
    raise ValueError("the layer Hessian stayed singular after dampening")
