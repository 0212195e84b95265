"""Projected vs measured on this machine: GGUF file size, peak RSS and decode speed.

Run ``python bench/gguf_memory.py [--quick] [--json PATH]``. For every GGUF type of
the sample (produced once with Quantplan's GGUF backend into var/bench/gguf/):

* file size vs ``planner.engine.artifact_bytes``;
* peak RSS of a fresh process that loads the model with llama.cpp (2 threads),
  prefills up to 512 tokens and decodes, at n_ctx 512 / 2048 / 8192, vs
  ``estimate_memory(..., get_gpu("cpu-generic-ddr5"), engine="llama.cpp")``,
  both raw and minus the RSS of the same process without a model (measured in
  this run);
* decode tokens/s, beside the engine's roofline for this machine's memory
  bandwidth (measured in this run with numpy, see ``bench/decode_limit.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    GGUF_BENCH_TYPES,
    MIB,
    ROOT,
    SAMPLE_MODEL_ID,
    THREADS,
    Recorder,
    add_common_args,
    ensure_gguf_types,
    gguf_tensor_bytes,
    load_str,
    median,
    pct,
)

PROBE = ROOT / "bench" / "_llama_probe.py"
CONTEXTS = (512, 2048, 8192)


def probe(
    model: Path | None, ctx: int, *, gen: int, runs: int, threads: int = THREADS
) -> dict[str, Any]:
    """Run one measurement in a fresh process and return what it printed."""
    cmd = [sys.executable, str(PROBE), "--ctx", str(ctx), "--threads", str(threads),
           "--gen", str(gen), "--runs", str(runs)]  # fmt: skip
    if model is not None:
        cmd += ["--model", str(model)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, cwd=str(ROOT), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}): {done.stderr[-800:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    data["peak"] = max(int(data["peak_rss"]), int(data.get("rss_after_decode", 0)))
    return data


def this_machine_gpu(bandwidth_bytes_per_s: float) -> Any:
    """cpu-generic-ddr5 with this machine's cores, memory and measured bandwidth."""
    from bench._common import machine
    from planner.engine import get_gpu, gpu_spec_from_dict

    base = get_gpu("cpu-generic-ddr5").to_dict()
    info = machine()
    # The catalog profile is 8 cores at 1 TFLOPS fp32: scale compute to our cores.
    tflops = dict(base["tflops"])  # type: ignore[call-overload]
    tflops["fp32"] = float(tflops["fp32"]) * (info["cores"] or 8) / 8
    base.update(
        id="this-machine",
        name=f"this machine ({info['cores']} cores, measured bandwidth)",
        memory_bytes=info["memory_bytes"] or base["memory_bytes"],
        memory_bandwidth_bytes_per_s=bandwidth_bytes_per_s,
        tflops=tflops,
        prices=[],
    )
    return gpu_spec_from_dict(base)


def main(argv: list[str] | None = None) -> int:
    """Measure every type at every context and write the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--types", default=",".join(GGUF_BENCH_TYPES))
    args = ap.parse_args(argv)
    rec = Recorder("gguf_memory", quick=args.quick)

    from bench.decode_limit import measure_bandwidth
    from planner.engine import (
        artifact_bytes,
        estimate_memory,
        estimate_speed,
        get_gpu,
        get_model,
        parse_format,
    )
    from planner.engine import runtime as engine_runtime
    from planner.engine.gguf_rules import gguf_cpu_repack_bytes

    types = [t for t in args.types.split(",") if t]
    contexts = (512, 8192) if args.quick else CONTEXTS
    gen, runs = (16, 1) if args.quick else (64, 3)
    paths = ensure_gguf_types(types, rec.note)
    spec = get_model(SAMPLE_MODEL_ID).spec
    cpu = get_gpu("cpu-generic-ddr5")
    # This machine's llama.cpp: with AVX-512 it also repacks Q2_K matrices.
    import dataclasses

    import llama_cpp

    if b"AVX512 = 1" in llama_cpp.llama_print_system_info():
        cpu = dataclasses.replace(cpu, cpu_features=("avx2", "avx512"))
    overhead_const = int(engine_runtime.LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES)
    compute_reserved = int(engine_runtime.llama_cpp_compute_bytes(spec))

    baselines = [probe(None, 512, gen=gen, runs=runs)["peak"] for _ in range(2)]
    baseline = int(median(baselines))
    rec.note(
        f"bare process (python + numpy + llama_cpp imported, backend initialised): "
        f"peak RSS {baseline / MIB:.1f} MiB ({load_str()})"
    )
    bandwidth = measure_bandwidth(quick=True)
    rec.note(
        f"numpy read bandwidth this run: {bandwidth['read_bytes_per_s'] / 1e9:.1f} GB/s"
    )
    here = this_machine_gpu(bandwidth["read_bytes_per_s"])

    rows: list[dict[str, Any]] = []
    for t in types:
        fmt = parse_format(f"gguf-{t}")
        path = paths[t]
        size = path.stat().st_size
        projected_size = artifact_bytes(spec, fmt)
        row: dict[str, Any] = {
            "type": t,
            "file_bytes": size,
            "tensor_bytes": gguf_tensor_bytes(path),
            "projected_file_bytes": projected_size,
            "size_err_pct": pct(size, projected_size),
            "contexts": [],
        }
        speeds = []
        for ctx in contexts:
            # Decode speed barely depends on n_ctx with a <= 512-token prompt: time
            # it at the first context only; the others are for memory.
            first = ctx == contexts[0]
            m = probe(path, ctx, gen=gen if first else 8, runs=runs if first else 1)
            est = estimate_memory(
                spec, fmt, cpu, engine="llama.cpp", gpus=1, context_tokens=ctx,
                sequences=1,
            )  # fmt: skip
            total = int(est.total_bytes_per_gpu)
            net = m["peak"] - baseline
            row["contexts"].append(
                {
                    "ctx": ctx,
                    "peak_rss": m["peak"],
                    "rss_loaded": m["rss_loaded"],
                    "net_rss": net,
                    "projected_total": total,
                    "projected_weights": int(est.weights_bytes_per_gpu),
                    "projected_kv": int(est.kv_cache_bytes_per_gpu),
                    "projected_compute": int(est.activation_bytes_per_gpu),
                    "projected_compute_reserved": compute_reserved,
                    "projected_repack": gguf_cpu_repack_bytes(
                        spec, t, avx512="avx512" in cpu.cpu_features
                    ),
                    "projected_overhead": int(est.overhead_bytes_per_gpu),
                    "err_raw_pct": pct(m["peak"], total),
                    "err_net_pct": pct(net, total - overhead_const),
                    "buffers_mib": m["buffers_mib"],
                    "decode_tokens_per_s": m["decode_tokens_per_s"],
                    "decode_runs": m["decode_runs"],
                    "prefill_tokens_per_s": m["prefill_tokens_per_s"],
                    "load": list(__import__("os").getloadavg()),
                }
            )
            if first:
                speeds.append(m["decode_tokens_per_s"])
            print(
                f"{t:7} ctx {ctx:5}: peak RSS {m['peak'] / MIB:7.1f} MiB "
                f"(net {net / MIB:6.1f}) projected {total / MIB:7.1f} MiB "
                f"[{pct(m['peak'], total):+6.1f}% raw, "
                f"{pct(net, total - overhead_const):+6.1f}% net]  "
                f"decode {m['decode_tokens_per_s']:6.1f} tok/s  ({load_str()})",
                flush=True,
            )
        speed = estimate_speed(
            spec, fmt, here, engine="llama.cpp", gpus=1, concurrency=1,
            prompt_tokens=512, output_tokens=2 * gen,
        )  # fmt: skip
        row["decode_tokens_per_s"] = max(speeds)
        row["decode_ctx"] = contexts[0]
        row["projected_decode_tokens_per_s"] = speed.decode_tokens_per_s
        row["bandwidth_limit_tokens_per_s"] = (
            bandwidth["read_bytes_per_s"] / row["tensor_bytes"]
        )
        rows.append(row)
        print(
            f"{t:7} file {size / MIB:7.2f} MiB vs projected {projected_size / MIB:7.2f} "
            f"MiB ({row['size_err_pct']:+.3f}%), decode best {max(speeds):.1f} tok/s vs "
            f"engine roofline {speed.decode_tokens_per_s:.1f} on this machine",
            flush=True,
        )

    rec.data = {
        "types": rows,
        "contexts": list(contexts),
        "baseline_rss": baseline,
        "baseline_runs": baselines,
        "bandwidth": bandwidth,
        "engine_constants": {
            "LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES": overhead_const,
            "LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION": float(
                engine_runtime.LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION
            ),
            "LLAMA_CPP_UBATCH_TOKENS": int(engine_runtime.LLAMA_CPP_UBATCH_TOKENS),
            "LLAMA_CPP_CTX_PAD_TOKENS": int(engine_runtime.LLAMA_CPP_CTX_PAD_TOKENS),
        },
        "fit": fit_constants(rows, baseline),
    }
    rec.write(args.json)
    return 0


def fit_constants(rows: list[dict[str, Any]], baseline: int) -> dict[str, Any]:
    """Split each measured peak RSS into parts and re-fit the engine's CPU constants.

    Parts: the bare process; llama.cpp's model buffers (mmap'd weights, plus the
    copy it makes of tensors it repacks for this CPU); the KV buffer; what else
    the load left resident (vocabulary, graph reservation); and what prefill and
    decode touched on top (the used part of the compute buffer). The fit, to set
    beside the engine's constants: host overhead = bare process + load extra;
    compute = the touched share of the reserved compute buffer; weights + repack.
    """
    parts = []
    for row in rows:
        for c in row["contexts"]:
            b = c.get("buffers_mib", {})
            mapped = b.get("model:CPU_Mapped", 0.0) * MIB
            repack = b.get("model:CPU_REPACK", 0.0) * MIB
            kv = b.get("KV:CPU", 0.0) * MIB
            load_extra = c["rss_loaded"] - baseline - mapped - repack - kv
            run_extra = c["peak_rss"] - c["rss_loaded"]
            parts.append(
                {
                    "type": row["type"],
                    "ctx": c["ctx"],
                    "mapped": mapped,
                    "repack": repack,
                    "kv": kv,
                    "load_extra": load_extra,
                    "run_extra": run_extra,
                    "compute": c["projected_compute_reserved"],
                    "weights": c["projected_weights"],
                    "projected_kv": c["projected_kv"],
                    "peak": c["peak_rss"],
                }
            )
    if not parts:
        return {}
    host = baseline + median(p["load_extra"] for p in parts)
    host_mib = -(-int(host) // MIB) * MIB  # round up to whole MiB
    share = median(p["run_extra"] / p["compute"] for p in parts)
    share = math.ceil(share * 100) / 100  # round up to the next 0.01
    errors = []
    for p in parts:
        estimate = p["weights"] + p["repack"] + p["projected_kv"] + host_mib
        estimate += share * p["compute"]
        p["fitted_estimate"] = estimate
        p["fitted_err_pct"] = pct(p["peak"], estimate)
        errors.append(abs(p["fitted_err_pct"]))
    return {
        "parts": parts,
        "bare_process_bytes": baseline,
        "load_extra_bytes_median": median(p["load_extra"] for p in parts),
        "run_extra_bytes_median": median(p["run_extra"] for p in parts),
        "fitted_cpu_host_overhead_bytes": host_mib,
        "fitted_cpu_compute_share": share,
        "repack_types": sorted({p["type"] for p in parts if p["repack"] > 0}),
        "fitted_max_abs_err_pct": max(errors),
        "fitted_median_abs_err_pct": median(errors),
    }


if __name__ == "__main__":
    sys.exit(main())
