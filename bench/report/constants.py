"""The engine's measured constants re-fitted on this run."""

from __future__ import annotations

from bench._common import MIB
from bench.report._base import load_result


def section_constants() -> str:
    mem = load_result("gguf_memory")
    lim = load_result("decode_limit")
    out = ["## Engine constants against this run\n"]
    out.append(
        "The benchmarks never change `planner/engine`; they re-fit its measured "
        "constants on every run, so a drift (another llama.cpp, another CPU) shows "
        "here first. Fitted on one small model (SmolLM2-135M: 49k vocabulary, hidden "
        "576) on one CPU.\n"
    )
    if mem is not None:
        d = mem["data"]
        fit = d.get("fit") or {}
        const = d["engine_constants"]
        if fit:
            host = const["LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES"] / MIB
            share = const["LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION"]
            out.append(
                "- **llama.cpp on a CPU** (`runtime._fixed_bytes_cached`, `kind == "
                "'cpu'`): weights (mapped from the file) + the copy llama.cpp re-lays "
                "out for its CPU kernels (`gguf_cpu_repack_bytes`: Q4_0, Q4_K, IQ4_NL "
                "and MXFP4 matrices, with AVX-512 Q2_K too; never the token "
                "embedding) + KV + a share of the "
                "reserved compute buffer + a process allowance.\n"
                f"  - process allowance `LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES`: engine "
                f"**{host:.0f} MiB**, this run **"
                f"{fit['fitted_cpu_host_overhead_bytes'] / MIB:.0f} MiB** (bare Python + "
                f"llama-cpp-python process {fit['bare_process_bytes'] / MIB:.0f} MiB + "
                f"what loading leaves resident, median "
                f"{fit['load_extra_bytes_median'] / MIB:.0f} MiB);\n"
                f"  - resident share of the compute buffer "
                f"`LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION`: engine **{share:.2f}**, "
                f"this run **{fit['fitted_cpu_compute_share']:.2f}** (touched, median "
                f"{fit['run_extra_bytes_median'] / MIB:.0f} MiB);\n"
                "  - repack copy: predicted per tensor; llama.cpp repacked matrices of "
                "the files "
                f"{', '.join(fit['repack_types']) or 'no type'} in this run (the "
                "*repack buf / repack* column of section 2 sets its buffer beside the "
                "prediction).\n"
                f"  With the re-fitted constants the estimate is within "
                f"{fit['fitted_max_abs_err_pct']:.1f}% of every measurement (median "
                f"{fit['fitted_median_abs_err_pct']:.1f}%); with the engine's, see goal "
                "2b. GPU hosts keep `LLAMA_CPP_HOST_OVERHEAD_BYTES` (256 MiB: the "
                "process also holds CUDA) and the whole compute buffer.\n"
            )
    if lim is not None and mem is not None:
        d = lim["data"]
        types = mem["data"]["types"]
        ratios = [
            t["decode_tokens_per_s"] / t["projected_decode_tokens_per_s"] for t in types
        ]
        out.append(
            "- **CPU decode speed** (`CPU_BANDWIDTH_EFFICIENCY` 0.6 x "
            "`KERNEL_BANDWIDTH_FACTOR['gguf']` 0.9 = 0.54 of the bandwidth): not "
            "re-fitted from this model. Measured decode is "
            f"{min(ratios):.2f}–{max(ratios):.2f}x the engine's roofline for this machine "
            f"(section 2) and Q4_K_M reaches {d['ratio_of_bests']:.2f} of the measured "
            "read bandwidth, but decode is compute-bound on these 2 cores, not "
            "bandwidth-bound (section 4). Fitting the efficiency needs a machine "
            "where decode is bandwidth-bound (more cores per GB/s), idle.\n"
        )
    return "\n".join(out) + "\n"
