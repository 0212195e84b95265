"""Round-to-nearest (RTN) weight quantization: the baseline the calibrated methods
must beat.

Every linear layer inside the decoder blocks (not the embeddings, not lm_head) is
rounded to an asymmetric integer grid with zero points: int8 usually per output
channel (``rtn-int8-g-1``), int4 per group of inputs (``rtn-int4-g64``).

Layout: the standard GPTQ checkpoint layout (``quant_method: gptq``, with
``desc_act: false``, ``sym: false``). RTN is GPTQ without error feedback, and that
layout holds both 4- and 8-bit integers (AWQ's GEMM layout is 4-bit only), so
transformers/vLLM load it as they load a GPTQ model, and our evaluator unpacks it
with the same code.
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from quantjobs.backends.base import (
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
)
from quantjobs.backends.torchq import common
from quantjobs.backends.torchq.checkpoint import (
    gptq_quantization_config,
    save_gptq_checkpoint,
)
from quantjobs.backends.torchq.formats import check_group_size, parse_format
from quantjobs.backends.torchq.layers import quantizable_linears
from quantjobs.backends.torchq.quantizer import QuantizedWeight, rtn_quantize


class RtnBackend(common.TorchEvaluated):
    """Round-to-nearest int4/int8, saved in the GPTQ layout; runs on CPU."""

    name = "rtn"
    queue: Literal["cpu", "gpu"] = "cpu"

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult:
        """Quantize every decoder-block linear of the source to the format's grid."""
        fmt = parse_format(request.format, "rtn")
        torch.set_num_threads(max(1, request.threads))
        started = time.perf_counter()
        source = common.source_dir(request, progress, log)
        progress(0.1, "load")
        model = common.load_causal_lm(source, torch.float32)
        linears = quantizable_linears(model)
        check_group_size(fmt, {n: lin.in_features for n, lin in linears.items()})
        log(
            f"RTN {fmt.bits}-bit, group {fmt.group_size}, asymmetric: "
            f"{len(linears)} linear layers"
        )
        quantized: dict[str, QuantizedWeight] = {}
        with torch.no_grad():
            for i, (name, linear) in enumerate(linears.items()):
                quantized[name] = rtn_quantize(
                    linear.weight, fmt.bits, fmt.group_size, sym=fmt.sym
                )
                progress(0.1 + 0.7 * (i + 1) / len(linears), "quantize")

        progress(0.8, "save")
        written = common.artifact_dirs(request, request.format)
        qc = gptq_quantization_config(fmt, damp_percent=None, quantizer="quantplan:rtn")
        save_gptq_checkpoint(model, quantized, written[0], source, qc)
        return common.finish_checkpoint(
            request,
            written,
            source,
            fmt,
            common.linear_shapes(linears.items()),
            started,
            progress,
            log,
            verify_at=0.9,
            metadata={
                "method": "rtn",
                "layout": "gptq",
                "bits": fmt.bits,
                "group_size": fmt.group_size,
                "sym": fmt.sym,
            },
        )


def quantize_model_rtn(
    model: torch.nn.Module, bits: int, group_size: int
) -> dict[str, QuantizedWeight]:
    """RTN in place on a loaded model (weights replaced by their dequantized grid)."""
    quantized = {}
    with torch.no_grad():
        for name, linear in quantizable_linears(model).items():
            q = rtn_quantize(linear.weight, bits, group_size, sym=False)
            linear.weight.copy_(q.dequantize(linear.weight.dtype))
            quantized[name] = q
    return quantized


__all__ = ["RtnBackend", "quantize_model_rtn"]
