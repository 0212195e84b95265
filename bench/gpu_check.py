"""The GPU check: run where a GPU is lent, write what was measured into docs/measurements.md.

    python bench/gpu_check.py [--out docs/measurements.md] [--quick]

It needs no Django, Redis or database: it drives the same backends a GPU worker runs
(quantjobs.backends.awq / gguf) on the bundled SmolLM2-135M sample, then puts the
measured GPU memory and tokens/s beside the planner's projection for that GPU.

1. AWQ int4 g64 of the sample on CUDA (autoawq), evaluated with torch on the GPU:
   KL divergence, perplexity change, prefill and generation tokens/s, peak GPU
   memory (torch.cuda.max_memory_allocated), quantization time.
2. GGUF Q4_K_M of the sample: quantization time, and llama.cpp tokens/s (on the GPU
   when llama-cpp-python was built with CUDA, else on the host CPU, as labelled).
3. The planner's projection for the same model, format and context on the detected
   GPU (catalog entry by name, else a GPU spec built from nvidia-smi's memory).

On a machine without CUDA it stops with a clear message (exit 2) and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE = "smollm2-135m-instruct-q4_1"
MODEL_ID = "smollm2-135m-instruct"
CONTEXT = 512


def _log(line: str) -> None:
    print(line, flush=True)


def _progress(fraction: float, stage: str) -> None:
    print(f"  {fraction * 100:5.1f}% {stage}", flush=True)


def gpu_name_and_memory() -> tuple[str, int]:
    """The first GPU's name and memory in bytes, from nvidia-smi."""
    out = (
        subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()[0]
    )
    name, memory_mib = (part.strip() for part in out.split(","))
    return name, int(float(memory_mib)) * 2**20


def catalog_gpu(name: str, memory_bytes: int) -> Any:
    """The catalog GPU whose name matches nvidia-smi's best, else a plain spec."""
    from planner.engine.catalog import gpu_spec_from_dict, load_gpus

    lowered = name.lower()
    best = None
    for gpu in load_gpus():
        words = [w for w in gpu.name.lower().replace("nvidia", "").split() if w]
        score = sum(1 for w in words if w in lowered)
        if gpu.kind == "gpu" and score and (best is None or score > best[0]):
            best = (score, gpu)
    if best is not None:
        return best[1]
    return gpu_spec_from_dict(
        {
            "id": "detected-gpu",
            "name": name,
            "vendor": "nvidia",
            "kind": "gpu",
            "memory_bytes": memory_bytes,
            "memory_bandwidth_bytes_per_s": 2.0e12,
            "tflops": {"fp16": 300, "bf16": 300},
        }
    )


def run_awq(work: Path, text: str, calibration: str, quick: bool) -> dict[str, Any]:
    """AWQ int4 g64 of the sample on CUDA, evaluated on the GPU."""
    from quantjobs.backends.awq import AwqBackend
    from quantjobs.backends.base import EvaluateRequest, QuantizeRequest
    from quantjobs.backends.gguf_to_hf import gguf_to_hf
    from quantjobs.samples import sample_path

    hf_dir = gguf_to_hf(sample_path(SAMPLE), work / "hf", _progress, _log)
    backend = AwqBackend()
    options = {"calibration_samples": 16 if quick else 64, "calibration_seq_len": 256}
    started = time.perf_counter()
    result = backend.quantize(
        QuantizeRequest(
            source_path=hf_dir,
            source_kind="hf",
            format="awq-4bit-g64",
            work_dir=work / "awq",
            calibration_text=calibration,
            options=options,
        ),
        _progress,
        _log,
    )
    quantize_s = time.perf_counter() - started
    measured = backend.evaluate(
        EvaluateRequest(
            model_path=result.artifact_path,
            model_kind="hf",
            reference_path=result.reference_path,
            reference_kind="hf",
            text=text,
            context_tokens=CONTEXT,
            max_chunks=4 if quick else 16,
        ),
        _progress,
        _log,
    )
    return {"quantize_s": quantize_s, **measured.__dict__}


def run_gguf(work: Path, text: str, quick: bool) -> dict[str, Any]:
    """GGUF Q4_K_M of the sample and its llama.cpp speed."""
    import llama_cpp

    from quantjobs.backends.base import EvaluateRequest, QuantizeRequest
    from quantjobs.backends.gguf import GgufBackend
    from quantjobs.samples import sample_path

    backend = GgufBackend()
    started = time.perf_counter()
    result = backend.quantize(
        QuantizeRequest(
            source_path=sample_path(SAMPLE),
            source_kind="gguf",
            format="gguf-Q4_K_M",
            work_dir=work / "gguf",
            threads=8,
        ),
        _progress,
        _log,
    )
    quantize_s = time.perf_counter() - started
    measured = backend.evaluate(
        EvaluateRequest(
            model_path=result.artifact_path,
            model_kind="gguf",
            reference_path=result.reference_path,
            reference_kind="gguf",
            text=text,
            context_tokens=CONTEXT,
            max_chunks=4 if quick else 16,
            threads=8,
        ),
        _progress,
        _log,
    )
    offload = bool(getattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)())
    return {
        "quantize_s": quantize_s,
        "gpu_offload": offload,
        "artifact_bytes": result.artifact_path.stat().st_size,
        **measured.__dict__,
    }


def projection(gpu: Any, fmt: str, engine_name: str) -> dict[str, Any]:
    """The planner's memory and speed for the sample on this GPU."""
    from planner.engine import estimate_memory, estimate_speed, parse_format
    from planner.engine.catalog import get_model

    spec = get_model(MODEL_ID).spec
    parsed = parse_format(fmt)
    memory = estimate_memory(
        spec,
        parsed,
        gpu,
        engine=engine_name,
        gpus=1,
        context_tokens=CONTEXT,
        sequences=1,
    )
    speed = estimate_speed(
        spec,
        parsed,
        gpu,
        engine=engine_name,
        gpus=1,
        concurrency=1,
        prompt_tokens=64,
        output_tokens=64,
    )
    tokens_per_s = getattr(speed, "decode_tokens_per_s", None)
    return {
        "memory_bytes": memory.total_bytes_per_gpu,
        "weights_bytes": memory.weights_bytes_per_gpu,
        "decode_tokens_per_s": tokens_per_s,
    }


def _pct(measured: float | None, projected: float | None) -> str:
    if not measured or not projected:
        return "—"
    return f"{(measured - projected) / projected * 100:+.1f}%"


def write_report(
    out: Path,
    gpu_name: str,
    awq: dict[str, Any],
    gguf: dict[str, Any],
    awq_proj: dict[str, Any],
    gguf_proj: dict[str, Any],
) -> None:
    """Append a dated section to docs/measurements.md."""
    mib = 2**20
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {gpu_name}",
        "",
        "Sample: SmolLM2-135M-Instruct, context 512, built-in evaluation text. "
        "Produced by `python bench/gpu_check.py`.",
        "",
        "| format | measured | projected | difference |",
        "|---|---|---|---|",
        f"| awq-4bit-g64 GPU peak memory (MiB) | {awq['gpu_peak_memory_bytes'] / mib:,.0f} | "
        f"{awq_proj['memory_bytes'] / mib:,.0f} (vLLM) | "
        f"{_pct(awq['gpu_peak_memory_bytes'], awq_proj['memory_bytes'])} |",
        f"| awq-4bit-g64 generation tok/s (torch, batch 1) | {awq['generation_tokens_per_s']:,.1f} | "
        f"{awq_proj['decode_tokens_per_s'] or 0:,.1f} (vLLM roofline) | "
        f"{_pct(awq['generation_tokens_per_s'], awq_proj['decode_tokens_per_s'])} |",
        f"| gguf-Q4_K_M generation tok/s ({'GPU' if gguf['gpu_offload'] else 'host CPU'}) | "
        f"{gguf['generation_tokens_per_s']:,.1f} | {gguf_proj['decode_tokens_per_s'] or 0:,.1f} | "
        f"{_pct(gguf['generation_tokens_per_s'], gguf_proj['decode_tokens_per_s'])} |",
        "",
        f"AWQ: quantized in {awq['quantize_s']:.0f} s, KLD {awq['kl_divergence']:.4f}, perplexity "
        f"{awq['perplexity']:.3f} vs {awq['base_perplexity']:.3f}. GGUF Q4_K_M: "
        f"{gguf['artifact_bytes']:,} bytes, KLD {gguf['kl_divergence']:.4f}, quantized in "
        f"{gguf['quantize_s']:.0f} s.",
        "",
        "```json",
        json.dumps(
            {
                "awq": awq,
                "gguf": gguf,
                "projection": {"awq": awq_proj, "gguf": gguf_proj},
            },
            indent=1,
            default=str,
        ),
        "```",
        "",
    ]
    if not out.exists():
        out.write_text(
            "# Measurements on GPU machines\n\nEach section is one run of "
            "`bench/gpu_check.py` on a lent GPU.\n\n"
        )
    with out.open("a") as handle:
        handle.write("\n".join(lines))


def main() -> int:
    """Run the GPU check and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "measurements.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(
            "No CUDA device: bench/gpu_check.py runs on a GPU machine.", file=sys.stderr
        )
        return 2
    from quantjobs.backends.child import calibration_text
    from quantjobs.evaltext import default_eval_text

    name, memory = gpu_name_and_memory()
    gpu = catalog_gpu(name, memory)
    _log(f"GPU: {name} ({memory / 2**30:.0f} GiB) → catalog {gpu.id}")
    text, calibration = default_eval_text(), calibration_text({})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        awq = run_awq(work, text, calibration, args.quick)
        gguf = run_gguf(work, text, args.quick)
    write_report(
        args.out,
        name,
        awq,
        gguf,
        projection(gpu, "awq-4bit-g64", "vllm"),
        projection(gpu, "gguf-Q4_K_M", "llama.cpp"),
    )
    _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
