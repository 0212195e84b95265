"""GPTQ weight quantization, implemented on plain torch (``torchq.gptq_algo``).

Why our own: GPTQModel 7.7 needs torch >= 2.14.1 and llm-compressor 0.14 needs
transformers >= 5.15, both incompatible with the stack the workers pin.

Walk: the calibration samples' inputs to decoder block 0 are captured; each block
is then quantized group by group of linears that share an input (q/k/v, o,
gate/up, down), with Hessians from inputs that already went through the quantized
earlier blocks and groups; the block's quantized outputs feed the next block.

Output: the standard GPTQ checkpoint layout (``qweight``/``qzeros``/``scales``/
``g_idx``, ``quantization_config`` with ``quant_method: gptq``), loadable by
transformers and vLLM; evaluated here by unpacking to float weights.

Format: ``gptq-{2,3,4,8}bit-g{N}[-act][-asym]``. Options: ``allow_cpu``,
``max_cpu_params``, ``calibration_samples`` (128), ``calibration_seq_len`` (512),
``calibration_batch_size`` (8), ``damp_percent`` (0.01), ``desc_act``, ``sym``.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import nn

from quantjobs.backends.base import (
    BackendError,
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
)
from quantjobs.backends.hf_source import validate_hf_dir
from quantjobs.backends.torchq import common
from quantjobs.backends.torchq.checkpoint import (
    gptq_quantization_config,
    save_gptq_checkpoint,
)
from quantjobs.backends.torchq.formats import (
    WeightFormat,
    apply_options,
    check_group_size,
    parse_format,
)
from quantjobs.backends.torchq.gptq_algo import HessianAccumulator, gptq_quantize
from quantjobs.backends.torchq.layers import (
    BlockBatch,
    block_linears,
    block_output,
    capture_block_inputs,
    decoder_layers,
    iter_linear_inputs,
    linear_groups,
    quantizable_linears,
)
from quantjobs.backends.torchq.quantizer import QuantizedWeight


class GptqBackend(common.TorchEvaluated):
    """GPTQ (Hessian-based, error-compensating) int2/3/4/8 in the GPTQ layout."""

    name = "gptq"
    queue: Literal["cpu", "gpu"] = "gpu"

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult:
        """Calibrate on ``request.calibration_text`` and write a GPTQ checkpoint."""
        from transformers import AutoTokenizer  # type: ignore[attr-defined]

        options = request.options
        fmt = apply_options(parse_format(request.format, "gptq"), options)
        damp_percent = float(options.get("damp_percent", 0.01))
        if not 0.0 < damp_percent < 1.0:
            raise BackendError("Option damp_percent must be between 0 and 1.")
        n_samples = common.int_option(options, "calibration_samples", 128)
        seq_len = common.int_option(options, "calibration_seq_len", 512, low=16)
        batch_size = common.int_option(options, "calibration_batch_size", 8)
        torch.set_num_threads(max(1, request.threads))
        started = time.perf_counter()

        source = common.source_dir(request, progress, log)
        device = common.check_device("gptq", validate_hf_dir(source), options, log)
        progress(0.02, "load")
        # Quantize in float32 on CPU (float16 matmuls are slow there); float16 on
        # GPU, with Hessians and the solver in float32 either way.
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        model = common.load_causal_lm(source, dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
        linears = quantizable_linears(model)
        check_group_size(fmt, {n: lin.in_features for n, lin in linears.items()})
        samples = common.calibration_samples(
            tokenizer, request.calibration_text, n_samples, seq_len, log
        )
        log(
            f"GPTQ {fmt.bits}-bit g{fmt.group_size} sym={fmt.sym} "
            f"desc_act={fmt.desc_act} damp={damp_percent}: {samples.shape[0]} "
            f"samples x {samples.shape[1]} tokens on {device.type}"
        )

        def layer_progress(fraction: float, stage: str) -> None:
            progress(0.05 + 0.8 * fraction, stage)

        quantized = gptq_quantize_model(
            model, samples, fmt, device, damp_percent, batch_size, layer_progress, log
        )

        progress(0.85, "save")
        written = common.artifact_dirs(request, request.format)
        qc = gptq_quantization_config(fmt, damp_percent, quantizer="quantplan:gptq")
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
            verify_at=0.95,
            metadata={
                "method": "gptq",
                "layout": "gptq",
                "bits": fmt.bits,
                "group_size": fmt.group_size,
                "sym": fmt.sym,
                "desc_act": fmt.desc_act,
                "damp_percent": damp_percent,
                "calibration_samples": int(samples.shape[0]),
                "calibration_seq_len": int(samples.shape[1]),
                "device": device.type,
            },
        )


@torch.no_grad()
def gptq_quantize_model(
    model: nn.Module,
    samples: torch.Tensor,
    fmt: WeightFormat,
    device: torch.device,
    damp_percent: float = 0.01,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
) -> dict[str, QuantizedWeight]:
    """Quantize every decoder-block linear of ``model`` in place, block by block.

    Each linear's weight is replaced by its dequantized grid, so the model (still
    float) computes what the packed checkpoint will; returns the integers by
    full module name.
    """
    layers = decoder_layers(model)
    names = {id(lin): name for name, lin in quantizable_linears(model).items()}
    batches = capture_block_inputs(model, samples, batch_size, device)
    quantized: dict[str, QuantizedWeight] = {}
    for index, block in enumerate(layers):
        block.to(device)
        for group in linear_groups(block, batches[0]):
            _quantize_group(
                block, group, batches, fmt, damp_percent, quantized, names, log
            )
        batches = [BlockBatch(block_output(block, b), b.kwargs) for b in batches]
        block.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if progress:
            progress(
                (index + 1) / len(layers), f"gptq: block {index + 1}/{len(layers)}"
            )
    return quantized


def _quantize_group(
    block: nn.Module,
    group: list[str],
    batches: list[BlockBatch],
    fmt: WeightFormat,
    damp_percent: float,
    quantized: dict[str, QuantizedWeight],
    names: dict[int, str],
    log: LogFn | None,
) -> None:
    """Hessian from the group's shared input, then GPTQ on the group's linears.

    GPTQ treats output rows independently given the Hessian, so the linears of a
    group (same input, same Hessian) are solved as one stacked matrix: identical
    result, one column loop instead of three.
    """
    linears = [block_linears(block)[name] for name in group]
    lead = linears[0]
    acc = HessianAccumulator(lead.in_features, lead.weight.device)
    for inputs in iter_linear_inputs(block, group[0], batches):
        acc.add(inputs)
    stacked = torch.cat([lin.weight for lin in linears], dim=0)
    full_names = ", ".join(names[id(lin)] for lin in linears)
    try:
        q, stats = gptq_quantize(
            stacked,
            acc.result(),
            fmt.bits,
            fmt.group_size,
            sym=fmt.sym,
            desc_act=fmt.desc_act,
            damp_percent=damp_percent,
        )
    except ValueError as exc:
        raise BackendError(
            f"GPTQ failed on {full_names}: {exc}. Use more calibration text or a "
            "larger damp_percent."
        ) from exc
    row = 0
    for linear in linears:
        rows = slice(row, row + linear.out_features)
        row += linear.out_features
        part = QuantizedWeight(
            intweight=q.intweight[rows].cpu().clone(),
            scales=q.scales[:, rows].cpu().clone(),
            zeros=q.zeros[:, rows].cpu().clone(),
            g_idx=q.g_idx.cpu().clone(),
            bits=q.bits,
            group_size=q.group_size,
        )
        linear.weight.copy_(part.dequantize(linear.weight.dtype))
        quantized[names[id(linear)]] = part
    if log:
        log(f"{full_names}: GPTQ loss {stats.loss:.4g} (damp {stats.damp:.3g})")
