"""Compare weight-quantization methods on the sample model (SmolLM2-135M-Instruct).

Run ``python bench/quant_methods.py [--only rtn-int4-g64,awq-4bit-g64] [--no-gguf]``,
or ``--preset bench`` / ``--preset quick`` (what ``bench/run_all.py`` runs, with
``--json PATH`` for its report).
The sample GGUF is converted to a float16 Hugging Face directory (the reference),
then quantized with RTN, AWQ (autoawq) and GPTQ (ours) using 16 calibration
samples of 256 tokens, and, unless ``--no-gguf``, with llama.cpp GGUF types through
the gguf backend (measured by llama.cpp against its own F16 base). Every
torch-measured method is scored on the same held-out tokens: mean KL(fp16 ‖ q),
perplexity change, top-1 agreement; the table also shows artifact bytes and
quantization time. Everything runs on this machine's CPU (or its GPU if any).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from planner.engine.quality import perplexity_change_pct  # noqa: E402
from quantjobs.backends import load_backend  # noqa: E402
from quantjobs.backends.base import (  # noqa: E402
    BackendError,
    EvaluateRequest,
    QuantizeRequest,
)
from quantjobs.backends.gguf_to_hf import convert_cached  # noqa: E402
from quantjobs.backends.torchq import corpus  # noqa: E402
from quantjobs.samples import sample_path  # noqa: E402

# (method, format, extra options)
METHODS: list[tuple[str, str, dict[str, object]]] = [
    ("rtn", "rtn-int8-g-1", {}),
    ("rtn", "rtn-int4-g64", {}),
    ("gptq", "gptq-8bit-g-1", {}),
    ("gptq", "gptq-4bit-g64", {}),
    ("gptq", "gptq-4bit-g64-asym", {}),
    ("gptq", "gptq-4bit-g64-act", {}),
    ("awq", "awq-4bit-g64", {"apply_clip": False}),
    ("awq", "awq-4bit-g64", {}),
]
GGUF_FORMATS = ["gguf-Q8_0", "gguf-Q4_K_M", "gguf-Q4_0"]

# No options: llama.cpp's own converter (gguf/convert.py) recognises the sample's
# tokenizer by hashing how it splits a fixed text, so nothing needs naming.
GGUF_OPTIONS: dict[str, object] = {}

# The comparison bench/run_all.py runs: int4 g64 by each method and the GGUF
# types, sized for a 2-core CPU. autoawq's clip search costs ~40 s per block
# there (most of AWQ's time), so the preset runs AWQ without it; ``--awq-clip``
# adds the product's default (clip on) row.
PRESETS: dict[str, dict[str, object]] = {
    "bench": {
        "plan": [
            ("rtn", "rtn-int4-g64", {}),
            ("awq", "awq-4bit-g64", {"apply_clip": False}),
            ("gptq", "gptq-4bit-g64", {}),
            *[
                ("gguf", f"gguf-{t}", GGUF_OPTIONS)
                for t in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
            ],
        ],
        "samples": 16,
        "seq_len": 256,
        "awq_samples": 8,
        "awq_seq_len": 128,
        "chunks": 8,
    },
    "quick": {
        "plan": [
            ("rtn", "rtn-int4-g64", {}),
            ("gptq", "gptq-4bit-g64", {}),
            ("gguf", "gguf-Q8_0", GGUF_OPTIONS),
            ("gguf", "gguf-Q4_K_M", GGUF_OPTIONS),
        ],
        "samples": 8,
        "seq_len": 128,
        "awq_samples": 8,
        "awq_seq_len": 128,
        "chunks": 4,
    },
}


@dataclass
class Row:
    """One line of the result table."""

    label: str
    artifact_bytes: int
    kld: float
    ppl: float
    base_ppl: float
    top1: float
    quantize_s: float
    measured_by: str
    evaluate_s: float = 0.0
    calibration: str = ""


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def run_one(
    method: str,
    fmt: str,
    options: dict[str, object],
    source: Path,
    work: Path,
    args: argparse.Namespace,
) -> Row:
    """Quantize ``source`` with one method and measure it on held-out text."""
    backend = load_backend(method)
    label = fmt + "".join(f" {k}={v}" for k, v in options.items())
    job = Path(tempfile.mkdtemp(prefix=f"{fmt}-", dir=work))
    samples, seq_len = args.samples, args.seq_len
    if method == "awq" and getattr(args, "awq_samples", None):
        samples, seq_len = args.awq_samples, args.awq_seq_len
    started = time.perf_counter()
    result = backend.quantize(
        QuantizeRequest(
            source_path=source,
            source_kind="hf",
            format=fmt,
            work_dir=job,
            calibration_text=corpus.calibration_text(),
            threads=args.threads,
            options={
                "allow_cpu": True,
                "calibration_samples": samples,
                "calibration_seq_len": seq_len,
                **options,
            },
        ),
        lambda fraction, stage: None,
        lambda line: None,
    )
    quantize_s = time.perf_counter() - started
    evaluate_started = time.perf_counter()
    evaluation = backend.evaluate(
        EvaluateRequest(
            model_path=result.artifact_path,
            model_kind=result.artifact_kind,
            reference_path=result.reference_path,
            reference_kind=result.reference_kind,
            text=corpus.held_out_text(),
            context_tokens=args.context,
            max_chunks=args.chunks,
            generation_tokens=16,
            threads=args.threads,
        ),
        lambda fraction, stage: None,
        lambda line: None,
    )
    return Row(
        label=label,
        artifact_bytes=_size(result.artifact_path),
        kld=evaluation.kl_divergence,
        ppl=evaluation.perplexity,
        base_ppl=evaluation.base_perplexity,
        top1=evaluation.top1_agreement,
        quantize_s=quantize_s,
        measured_by="llama.cpp" if result.artifact_kind == "gguf" else "torch",
        evaluate_s=time.perf_counter() - evaluate_started,
        calibration=f"{samples}x{seq_len}" if method in ("awq", "gptq") else "",
    )


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated formats to run")
    parser.add_argument("--no-gguf", action="store_true")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a fixed comparison")
    parser.add_argument("--quick", action="store_true", help="same as --preset quick")
    parser.add_argument("--awq-clip", action="store_true", help="add AWQ with clip on")
    parser.add_argument("--json", type=Path, help="write the rows for bench/run_all.py")
    args = parser.parse_args()
    args.started = time.time()
    args.load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    if args.quick and not args.preset:
        args.preset = "quick"
    preset = PRESETS.get(args.preset or "", {})
    if preset:
        args.samples = int(preset["samples"])  # type: ignore[call-overload]
        args.seq_len = int(preset["seq_len"])  # type: ignore[call-overload]
        args.chunks = int(preset["chunks"])  # type: ignore[call-overload]
        args.awq_samples = int(preset["awq_samples"])  # type: ignore[call-overload]
        args.awq_seq_len = int(preset["awq_seq_len"])  # type: ignore[call-overload]

    work = Path(tempfile.mkdtemp(prefix="quant-methods-"))
    cache = Path(tempfile.gettempdir()) / "quantplan-tests" / "hf-convert"
    source = convert_cached(
        sample_path("smollm2-135m-instruct-q4_1"), cache, lambda f, s: None, print
    )
    plan = list(METHODS)
    if not args.no_gguf:
        plan += [("gguf", fmt, {}) for fmt in GGUF_FORMATS]
    if preset:
        plan = list(preset["plan"])  # type: ignore[call-overload]
        if args.awq_clip:
            plan.insert(2, ("awq", "awq-4bit-g64", {}))
    if args.only:
        wanted = set(args.only.split(","))
        plan = [p for p in plan if p[1] in wanted]
    print(
        f"SmolLM2-135M-Instruct, calibration {args.samples}x{args.seq_len} tokens, "
        f"eval {args.chunks} chunks x {args.context} tokens held out, "
        f"{args.threads} threads, device "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    header = (
        f"{'format':34} {'MB':>7} {'KLD':>8} {'PPL':>8} {'dPPL%':>7} "
        f"{'top-1':>6} {'time s':>7}  measured by"
    )
    print(header)
    print("-" * len(header))
    rows: list[dict[str, object]] = []
    for method, fmt, options in plan:
        try:
            row = run_one(method, fmt, options, source, work, args)
        except BackendError as exc:
            print(f"{fmt:34} failed: {exc}")
            rows.append({"format": fmt, "method": method, "error": str(exc)})
            continue
        rows.append({"format": fmt, "method": method, **row.__dict__})
        delta = perplexity_change_pct(row.ppl, row.base_ppl) or 0.0
        print(
            f"{row.label:34} {row.artifact_bytes / 1e6:7.1f} {row.kld:8.4f} "
            f"{row.ppl:8.3f} {delta:7.2f} {row.top1:6.3f} {row.quantize_s:7.0f}  "
            f"{row.measured_by} (base ppl {row.base_ppl:.3f})",
            flush=True,
        )
    if args.json:
        _write_json(args, rows)
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"artifacts left in {work}")


def _write_json(args: argparse.Namespace, rows: list[dict[str, object]]) -> None:
    """The rows, the settings and the planner's projected sizes, for the report."""
    from bench._common import Recorder
    from planner.engine import artifact_bytes, get_model, parse_format

    spec = get_model("smollm2-135m-instruct").spec
    for row in rows:
        try:
            row["projected_bytes"] = artifact_bytes(
                spec, parse_format(str(row["format"]))
            )
        except Exception:  # noqa: BLE001 - a format the planner does not size
            row["projected_bytes"] = None
    rec = Recorder("quant_methods", quick=args.preset == "quick")
    rec.started, rec.load_before = args.started, args.load_before
    rec.data = {
        "rows": rows,
        "preset": args.preset,
        "calibration": f"{args.samples}x{args.seq_len}",
        "awq_calibration": f"{getattr(args, 'awq_samples', args.samples)}x"
        f"{getattr(args, 'awq_seq_len', args.seq_len)}",
        "eval": f"{args.chunks} chunks x {args.context} tokens",
        "threads": args.threads,
    }
    rec.write(args.json)


if __name__ == "__main__":
    main()
