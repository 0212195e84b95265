"""Plumbing the RTN, AWQ and GPTQ backends share: sources, limits, calibration,
artifact placement and verification."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
    sha256_file,
)
from quantjobs.backends.gguf_to_hf import convert_cached
from quantjobs.backends.hf_source import HfSource, validate_hf_dir
from quantjobs.backends.torchq import corpus
from quantjobs.backends.torchq.formats import WeightFormat

# Above this many parameters a CPU run of a calibrated method takes too long to
# be useful (AWQ: ~3 min for 135M parameters with 16x256 calibration tokens).
DEFAULT_MAX_CPU_PARAMS = 600_000_000


def source_dir(request: QuantizeRequest, progress: ProgressFn, log: LogFn) -> Path:
    """The request's model as a checked Hugging Face directory.

    A GGUF source is converted once (into the job's work dir) through
    ``gguf_to_hf``; the converted directory is also the reference to compare with.
    """
    if request.source_kind == "gguf":
        log("Source is a GGUF: converting it to a Hugging Face directory first")
        return convert_cached(
            Path(request.source_path),
            Path(request.work_dir) / "source-hf",
            progress,
            log,
        )
    validate_hf_dir(Path(request.source_path))
    return Path(request.source_path)


def check_device(
    method: str, source: HfSource, options: dict[str, Any], log: LogFn
) -> torch.device:
    """CUDA if present; CPU only when the job allows it and the model is small."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if not options.get("allow_cpu", False):
        raise BackendError(
            f"{method.upper()} quantization runs on GPU workers and this worker has "
            "no GPU. For small models set the option allow_cpu."
        )
    limit = int(options.get("max_cpu_params", DEFAULT_MAX_CPU_PARAMS))
    if source.parameter_count > limit:
        raise BackendError(
            f"{method.upper()} on CPU is limited to {limit / 1e6:.0f}M parameters "
            f"and this model has {source.parameter_count / 1e6:.0f}M; run it on a "
            "GPU worker."
        )
    log(f"No GPU: quantizing {source.parameter_count / 1e6:.0f}M parameters on CPU")
    return torch.device("cpu")


def calibration_samples(
    tokenizer: Any,
    text: str | None,
    n_samples: int,
    seq_len: int,
    log: LogFn,
) -> torch.Tensor:
    """``[n, seq_len]`` token windows spread evenly over the calibration text."""
    if not text:
        log("No calibration text given: using the built-in English corpus")
        text = corpus.calibration_text()
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = len(ids) // seq_len
    if windows == 0:
        raise BackendError(
            f"The calibration text has {len(ids)} tokens, fewer than one sample of "
            f"{seq_len}; give more text or a smaller calibration_seq_len."
        )
    if windows < n_samples:
        log(f"Calibration text holds {windows} samples of {seq_len} tokens only")
    n = min(n_samples, windows)
    # Evenly spaced windows see more of the text than the first n would.
    starts = [round(i * (windows - 1) / max(n - 1, 1)) * seq_len for i in range(n)]
    rows = [ids[s : s + seq_len] for s in starts]
    return torch.tensor(rows, dtype=torch.long)


def int_option(options: dict[str, Any], key: str, default: int, low: int = 1) -> int:
    """An integer option with a lower bound, or a BackendError naming it."""
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise BackendError(f"Option {key} must be an integer >= {low}, not {value!r}.")
    return value


def artifact_dirs(request: QuantizeRequest, fmt_name: str) -> tuple[Path, Path]:
    """(temporary, final) artifact directories inside the job's work dir."""
    work = Path(request.work_dir)
    final = work / f"model-{fmt_name}"
    tmp = work / f".model-{fmt_name}.partial"
    for path in (tmp, final):
        if path.exists():
            shutil.rmtree(path)
    return tmp, final


def publish(tmp: Path, final: Path) -> dict[str, str]:
    """Move a verified artifact into place; returns sha256 per file."""
    hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    os.replace(tmp, final)
    return hashes


def dir_bytes(path: Path) -> int:
    """Total size of the files in a directory."""
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def verify_packed_artifact(
    path: Path,
    fmt: WeightFormat,
    expected: dict[str, tuple[int, int]],
    layout: str,
) -> None:
    """Re-read a written artifact: config, headers and every packed tensor's shape.

    ``expected`` maps each quantized module to ``(in_features, out_features)``;
    ``layout`` is "gptq" or "awq".
    """
    from safetensors import safe_open

    from quantjobs.backends.torchq.checkpoint import read_config

    source = validate_hf_dir(path)
    qc = read_config(path).get("quantization_config")
    if not isinstance(qc, dict) or qc.get("quant_method") != layout:
        raise BackendError(f"The written config.json is not a {layout} checkpoint.")
    bits = int(qc.get("bits", 0))
    group_size = int(qc.get("group_size", 0))
    if (bits, group_size) != (fmt.bits, fmt.group_size):
        raise BackendError(
            f"The written config says {bits}-bit g{group_size}, expected "
            f"{fmt.bits}-bit g{fmt.group_size}."
        )
    tensors: dict[str, torch.Tensor] = {}
    for file in source.weight_files:
        with safe_open(str(file), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open is no Mapping
                if name.rsplit(".", 1)[0] in expected:
                    tensors[name] = fh.get_tensor(name)
    for module, (n_in, n_out) in expected.items():
        n_groups = 1 if fmt.group_size == -1 else n_in // fmt.group_size
        if layout == "gptq":
            shapes = {
                "qweight": (n_in * bits // 32, n_out),
                "qzeros": (n_groups, n_out * bits // 32),
                "scales": (n_groups, n_out),
                "g_idx": (n_in,),
            }
        else:
            shapes = {
                "qweight": (n_in, n_out * bits // 32),
                "qzeros": (n_groups, n_out * bits // 32),
                "scales": (n_groups, n_out),
            }
        for leaf, shape in shapes.items():
            tensor = tensors.get(f"{module}.{leaf}")
            if tensor is None or tuple(tensor.shape) != shape:
                got = None if tensor is None else tuple(tensor.shape)
                raise BackendError(
                    f"Artifact check failed: {module}.{leaf} is {got}, "
                    f"expected {shape}."
                )
        scales = tensors[f"{module}.scales"]
        if scales.dtype != torch.float16 or not bool(torch.isfinite(scales).all()):
            raise BackendError(f"Artifact check failed: bad scales in {module}.")
        if tensors[f"{module}.qweight"].dtype != torch.int32:
            raise BackendError(f"Artifact check failed: {module}.qweight not int32.")


def linear_shapes(
    linears: Iterable[tuple[str, torch.nn.Linear]],
) -> dict[str, tuple[int, int]]:
    """``name -> (in_features, out_features)`` for the given linears."""
    return {name: (lin.in_features, lin.out_features) for name, lin in linears}


def load_causal_lm(source: Path, dtype: torch.dtype) -> Any:
    """The source's model for quantizing: safetensors only, never remote code."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(source), torch_dtype=dtype, use_safetensors=True, trust_remote_code=False
    ).eval()


def finish_checkpoint(
    request: QuantizeRequest,
    written: tuple[Path, Path],
    source: Path,
    fmt: WeightFormat,
    shapes: dict[str, tuple[int, int]],
    started: float,
    progress: ProgressFn,
    log: LogFn,
    *,
    verify_at: float,
    metadata: dict[str, Any],
) -> QuantizeResult:
    """Verify the checkpoint written in ``written[0]``, publish it as ``written[1]``.

    ``metadata`` names the method; ``layout`` in it ("gptq" or "awq-gemm") picks
    the packed layout to check.
    """
    tmp, final = written
    progress(verify_at, "verify")
    layout = "awq" if metadata["layout"] == "awq-gemm" else "gptq"
    verify_packed_artifact(tmp, fmt, shapes, layout=layout)
    hashes = publish(tmp, final)
    elapsed = time.perf_counter() - started
    size = dir_bytes(final)
    log(f"Wrote {final.name}: {size} bytes in {elapsed:.1f} s")
    progress(1.0, "done")
    return QuantizeResult(
        artifact_path=final,
        format=request.format,
        reference_path=source,
        reference_kind="hf",
        artifact_kind="hf",
        metadata={
            **metadata,
            "quantized_layers": len(shapes),
            "artifact_bytes": size,
            "quantize_time_s": elapsed,
            "sha256": hashes,
        },
    )


class TorchEvaluated:
    """The evaluation every torch method shares: unpack to float, compare in torch."""

    def evaluate(
        self, request: EvaluateRequest, progress: ProgressFn, log: LogFn
    ) -> EvaluateResult:
        """Measure the artifact against its reference with the torch evaluator."""
        from quantjobs.backends.torch_eval import evaluate_hf

        return evaluate_hf(request, progress, log)
