"""AWQ (activation-aware weight quantization) through autoawq 0.2.9.

autoawq searches, block by block, per-input-channel scales that protect the
weights multiplying large activations, then rounds to a 4-bit grid with zero
points and packs the result in its GEMM layout (``version: gemm``), which
transformers and vLLM load directly.

What we add around it:

- calibration comes from the request's text, tokenized by us and handed over as
  token lists (never autoawq's default, a pile-val download): exactly ``n``
  samples of ``seq_len`` tokens;
- a fix for CPU runs: ``AwqQuantizer._compute_best_scale`` saves the original
  weights with ``v.cpu()``, which on CPU is the very tensor the grid search then
  scales in place, so every candidate ratio compounds the previous ones and the
  "best" scale is garbage. Our subclass makes that snapshot a real copy, only
  when the block is on CPU (on GPU ``.cpu()`` already copies);
- progress per decoder block, size limits for CPU runs, ``trust_remote_code``
  off, and a check of the written checkpoint before it is published.

Evaluation unpacks the GEMM integers into float weights (``torchq.checkpoint``):
autoawq's CPU kernels need intel-extension-for-pytorch, which does not support
our torch.

Options: ``allow_cpu``, ``max_cpu_params``, ``calibration_samples`` (128),
``calibration_seq_len`` (512), ``n_parallel_calib_samples`` (all),
``apply_clip`` (True), ``duo_scaling`` (True).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import torch

from quantjobs.backends.base import (
    BackendError,
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
)
from quantjobs.backends.hf_source import validate_hf_dir
from quantjobs.backends.torchq import common
from quantjobs.backends.torchq.checkpoint import copy_side_files
from quantjobs.backends.torchq.formats import check_group_size, parse_format
from quantjobs.backends.torchq.layers import quantizable_linears


class AwqBackend(common.TorchEvaluated):
    """autoawq 4-bit, zero point, GEMM layout; GPU queue, CPU for small models."""

    name = "awq"
    queue: Literal["cpu", "gpu"] = "gpu"

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult:
        """Run autoawq on the source with our calibration text; write GEMM layout."""
        fmt = parse_format(request.format, "awq")
        options = request.options
        n_samples = common.int_option(options, "calibration_samples", 128)
        seq_len = common.int_option(options, "calibration_seq_len", 512, low=16)
        n_parallel = options.get("n_parallel_calib_samples")
        if n_parallel is not None:
            n_parallel = common.int_option(options, "n_parallel_calib_samples", 1)
        apply_clip = bool(options.get("apply_clip", True))
        duo_scaling = bool(options.get("duo_scaling", True))
        torch.set_num_threads(max(1, request.threads))
        started = time.perf_counter()

        awq_cls = _autoawq_model_class()
        source = common.source_dir(request, progress, log)
        checked = validate_hf_dir(source)
        _check_supported(checked.model_type)
        device = common.check_device("awq", checked, options, log)
        progress(0.02, "load")
        # float32 on CPU (float16 matmuls are slow there); autoawq packs from
        # float16 either way.
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        awq_model = awq_cls.from_pretrained(
            str(source),
            torch_dtype=dtype,
            trust_remote_code=False,
            safetensors=True,
            device_map=None,
        )
        from transformers import AutoTokenizer  # type: ignore[attr-defined]

        tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
        linears = quantizable_linears(awq_model.model)
        check_group_size(fmt, {n: lin.in_features for n, lin in linears.items()})
        shapes = common.linear_shapes(linears.items())
        samples = common.calibration_samples(
            tokenizer, request.calibration_text, n_samples, seq_len, log
        )
        n_blocks = int(awq_model.model.config.num_hidden_layers)
        log(
            f"AWQ 4-bit g{fmt.group_size} zero-point GEMM: {samples.shape[0]} samples "
            f"x {samples.shape[1]} tokens, clip={apply_clip}, on {device.type}"
        )

        def block_progress(done: int) -> None:
            progress(0.05 + 0.8 * done / n_blocks, f"awq: block {done + 1}/{n_blocks}")

        awq_model.quantize(
            tokenizer,
            quant_config={
                "zero_point": True,
                "q_group_size": fmt.group_size,
                "w_bit": fmt.bits,
                "version": "GEMM",
            },
            # Token lists: autoawq's loader keeps them as given (strings would be
            # re-tokenized and silently dropped when longer than max_calib_seq_len).
            calib_data=samples.tolist(),
            max_calib_samples=int(samples.shape[0]),
            max_calib_seq_len=int(samples.shape[1]),
            n_parallel_calib_samples=n_parallel,
            apply_clip=apply_clip,
            duo_scaling=duo_scaling,
            quantizer_cls=quantizer_class(block_progress),
        )

        progress(0.85, "save")
        written = common.artifact_dirs(request, request.format)
        # Non-quantized tensors (embeddings, norms) in float16, like every AWQ
        # checkpoint: the GEMM kernels compute in float16.
        awq_model.model.to(torch.float16)
        awq_model.model.config.torch_dtype = torch.float16
        awq_model.save_quantized(str(written[0]))
        # autoawq flips do_sample on in generation_config.json; keep the source's.
        copy_side_files(source, written[0])
        return common.finish_checkpoint(
            request,
            written,
            source,
            fmt,
            shapes,
            started,
            progress,
            log,
            verify_at=0.95,
            metadata={
                "method": "awq",
                "layout": "awq-gemm",
                "bits": fmt.bits,
                "group_size": fmt.group_size,
                "zero_point": True,
                "apply_clip": apply_clip,
                "calibration_samples": int(samples.shape[0]),
                "calibration_seq_len": int(samples.shape[1]),
                "device": device.type,
                "cpu_scale_fix": device.type == "cpu",
            },
        )


def _autoawq_model_class() -> Any:
    try:
        from awq import AutoAWQForCausalLM
    except ImportError as exc:
        raise BackendError(
            "autoawq is not installed on this worker; AWQ jobs need a worker "
            "with the quantization extras."
        ) from exc
    return AutoAWQForCausalLM


def _check_supported(model_type: str) -> None:
    from awq.models.auto import AWQ_CAUSAL_LM_MODEL_MAP

    if model_type not in AWQ_CAUSAL_LM_MODEL_MAP:
        known = ", ".join(sorted(AWQ_CAUSAL_LM_MODEL_MAP)[:12])
        raise BackendError(
            f"autoawq does not support the architecture {model_type!r} "
            f"(it supports {known}, ...); use GPTQ or RTN for this model."
        )


def quantizer_class(on_block: Any = None) -> type:
    """autoawq's ``AwqQuantizer`` with our progress hook and the CPU snapshot fix."""
    from awq.quantize.quantizer import AwqQuantizer

    class QuantplanAwqQuantizer(AwqQuantizer):  # type: ignore[misc]
        """Reports each decoder block; copies the weight snapshot on CPU."""

        _blocks_started = 0

        def _get_input_feat(self, layer: Any, named_linears: Any) -> Any:
            # autoawq calls this exactly once per block, at the block's start.
            if on_block is not None:
                on_block(self._blocks_started)
            self._blocks_started += 1
            return super()._get_input_feat(layer, named_linears)

        def _compute_best_scale(
            self,
            x: torch.Tensor,
            w_mean: torch.Tensor,
            x_mean: torch.Tensor,
            module2inspect: torch.nn.Module,
            linears2scale: list[torch.nn.Linear],
            fp16_output: torch.Tensor,
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            args = (x, w_mean, x_mean, module2inspect, linears2scale, fp16_output)
            kwargs = {} if kwargs is None else kwargs
            if x.device.type != "cpu":
                return super()._compute_best_scale(*args, kwargs)
            # The parent snapshots ``{k: v.cpu() for k, v in state_dict()}``; on
            # CPU that aliases the live weights it then scales in place. Serve it
            # a state_dict of copies for the duration of the call.
            live_state_dict = module2inspect.state_dict

            def copied_state_dict(*a: Any, **kw: Any) -> dict[str, torch.Tensor]:
                return {k: v.clone() for k, v in live_state_dict(*a, **kw).items()}

            module2inspect.state_dict = copied_state_dict  # type: ignore[method-assign, assignment]
            try:
                return super()._compute_best_scale(*args, kwargs)
            finally:
                del module2inspect.state_dict

    return QuantplanAwqQuantizer
