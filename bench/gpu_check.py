# Kept whole: one prepared script carried to a GPU machine and run as a file.
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
4. Serving under load (issue 15): the sample served by llama.cpp's ``llama-server``
   built with CUDA (``-ngl 999``) at 1, 2, 4 and 8 slots under the bounded
   closed-loop load of ``bench/serving_load.py``; TTFT and time per output token
   against ``planner.engine.latency`` for the detected GPU, error per point.
   The server is built once from the vendored llama.cpp sources with
   ``-DGGML_CUDA=ON`` for this GPU's architecture (needs nvcc; ``--llama-server``
   takes a ready binary instead).

    python bench/gpu_check.py --serving-only [--llama-server PATH] [--quick]
    python bench/gpu_check.py --dry-run [--gpu-name "NVIDIA H200"]   # no GPU needed

On a machine without CUDA it stops with a clear message (exit 2) and writes nothing;
``--dry-run`` prints what it would run and the model's figures for ``--gpu-name``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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


def cuda_cmake_flags() -> tuple[str, ...]:
    """The CPU tools' build (the shared llama.cpp tool flags), with CUDA."""
    from quantjobs.backends.gguf.llama_cpp_source import TOOL_CMAKE_FLAGS

    return ("-DGGML_CUDA=ON", *TOOL_CMAKE_FLAGS)


def cuda_server_build_steps(src: Path, build: Path, arch: str) -> list[list[str]]:
    """cmake steps that build llama-server with CUDA for one architecture."""
    return [
        ["cmake", "-S", str(src), "-B", str(build), *cuda_cmake_flags(),
         f"-DCMAKE_CUDA_ARCHITECTURES={arch}"],
        ["cmake", "--build", str(build), "--target", "llama-server", "-j",
         str(os.cpu_count() or 4)],
    ]  # fmt: skip


def compute_capability() -> str:
    """The first GPU's compute capability as CMake wants it ('90' for 9.0)."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip().splitlines()[0]  # fmt: skip
    return out.strip().replace(".", "")


def ensure_cuda_llama_server(log: Any = _log) -> Path:
    """llama-server built with CUDA from the vendored sources (cached)."""
    import importlib.metadata
    import shutil

    from quantjobs.backends.gguf.llama_cpp_source import (
        cache_root,
        ensure_llama_cpp_source,
    )

    arch = compute_capability()
    version = importlib.metadata.version("llama-cpp-python")
    root = cache_root() / "llama-server-cuda" / f"{version}-sm{arch}"
    binary = root / "build" / "bin" / "llama-server"
    if binary.is_file():
        return binary
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file():
        raise RuntimeError(
            "nvcc not found: llama-server cannot be built with CUDA here; pass "
            "--llama-server PATH to a CUDA build."
        )
    src = ensure_llama_cpp_source(log)
    for step in cuda_server_build_steps(src, root / "build", arch):
        log("running " + " ".join(step[:4]) + " ...")
        done = subprocess.run(step, capture_output=True, text=True, timeout=3000)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeError("building llama-server failed: " + " | ".join(tail))
    return binary


def serving_settings(args: argparse.Namespace) -> Any:
    """bench/serving_load.py's settings for a GPU: every layer on the GPU."""
    from bench.serving_load import LoadSettings

    slots = tuple(int(x) for x in str(args.slots).split(",") if x.strip())
    s = LoadSettings(
        prompt_tokens=args.prompt,
        output_tokens=args.output,
        requests_per_client=2 if args.quick else args.requests,
        threads=args.threads,
        gpu_layers=999,
        slots=slots,
    )
    s.check()
    return s


def run_serving(gpu: Any, binary: Path, s: Any) -> list[dict[str, Any]]:
    """Serve the sample with the CUDA llama-server and compare with the model."""
    from bench.serving_load import SAMPLE, compare, model_points, print_table, serve_all
    from quantjobs.samples import sample_path

    measured = serve_all(binary, sample_path(SAMPLE), s, _log)
    rows = compare(measured, model_points(gpu, s))
    print_table(rows, _log)
    return rows


def write_serving_report(
    out: Path, gpu_name: str, s: Any, rows: list[dict[str, Any]]
) -> None:
    """Append the serving-under-load table to docs/measurements.md."""
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {gpu_name}: "
        "llama-server under load",
        "",
        f"Sample SmolLM2-135M Q4_1 served by llama-server (CUDA, -ngl 999), "
        f"{s.prompt_tokens} prompt / {s.output_tokens} output tokens, "
        f"{s.requests_per_client} requests per client, closed loop with staggered "
        "starts (`bench/serving_load.py`). Error = (model - measured) / measured.",
        "",
        "| slots | TTFT ms | model | error | TPOT ms | model | error |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['slots']} | {r['measured_ttft_mean_s'] * 1e3:.1f} | "
            f"{r['model_ttft_mean_s'] * 1e3:.1f} | {r['error_ttft_mean_s_pct']:+.0f}% | "
            f"{r['measured_tpot_mean_s'] * 1e3:.2f} | "
            f"{r['model_tpot_mean_s'] * 1e3:.2f} | {r['error_tpot_mean_s_pct']:+.0f}% |"
        )
    lines += ["", "```json", json.dumps(rows, indent=1, default=str), "```", ""]
    if not out.exists():
        out.write_text(
            "# Measurements on GPU machines\n\nEach section is one run of "
            "`bench/gpu_check.py` on a lent GPU.\n\n"
        )
    with out.open("a") as handle:
        handle.write("\n".join(lines))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "measurements.md")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--serving-only", action="store_true", help="only the llama-server check"
    )
    parser.add_argument(
        "--no-serving", action="store_true", help="skip the llama-server check"
    )
    parser.add_argument(
        "--llama-server", type=Path, default=None, help="a CUDA llama-server binary"
    )
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--output", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--slots", default="1,2,4,8")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan; needs no GPU"
    )
    parser.add_argument(
        "--gpu-name", default="NVIDIA H200", help="the GPU a --dry-run plans for"
    )
    return parser.parse_args(argv)


def dry_run(args: argparse.Namespace, s: Any) -> int:
    """What the check would run, and the model's serving figures for --gpu-name."""
    from bench.serving_load import SAMPLE, model_points, server_command
    from quantjobs.samples import sample_path

    gpu = catalog_gpu(args.gpu_name, 0)
    _log(f"GPU {args.gpu_name!r} → catalog {gpu.id}")
    steps = []
    if not args.serving_only:
        steps += ["AWQ int4 g64 on CUDA", "GGUF Q4_K_M (llama.cpp)"]
    if not args.no_serving:
        steps.append("llama-server (CUDA) under load")
    _log("would run: " + "; ".join(steps))
    if not args.no_serving:
        binary = args.llama_server or Path(
            "<cache>/llama-server-cuda/build/bin/llama-server"
        )
        for n in s.slots:
            cmd = server_command(binary, sample_path(SAMPLE), slots=n, port=0, s=s)
            _log("  " + " ".join(cmd))
        for n, point in model_points(gpu, s).items():
            _log(
                f"  model, {n} slots: TTFT {point['ttft_mean_s'] * 1e3:.2f} ms, "
                f"TPOT {point['tpot_mean_s'] * 1e3:.3f} ms"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the GPU check and write the report."""
    args = parse_args(argv)
    if args.serving_only and args.no_serving:
        print("--serving-only and --no-serving exclude each other.", file=sys.stderr)
        return 2
    try:
        s = serving_settings(args)
    except ValueError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(args, s)
    import torch

    if not torch.cuda.is_available():
        print(
            "No CUDA device: bench/gpu_check.py runs on a GPU machine "
            "(--dry-run prints its plan anywhere).",
            file=sys.stderr,
        )
        return 2
    from quantjobs.backends.child import calibration_text
    from quantjobs.evaltext import default_eval_text

    name, memory = gpu_name_and_memory()
    gpu = catalog_gpu(name, memory)
    _log(f"GPU: {name} ({memory / 2**30:.0f} GiB) → catalog {gpu.id}")
    if not args.serving_only:
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
    if not args.no_serving:
        binary = args.llama_server or ensure_cuda_llama_server()
        rows = run_serving(gpu, binary, s)
        write_serving_report(args.out, name, s, rows)
    _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
