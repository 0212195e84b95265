"""The engine's measured constants re-fitted on this run."""

from __future__ import annotations

from typing import Any

from bench._common import MIB
from bench.report._base import load_result, prose


def section_constants() -> str:
    mem = load_result("gguf_memory")
    lim = load_result("decode_limit")
    cpu_memory = ""
    if mem is not None and mem["data"].get("fit"):
        cpu_memory = _cpu_memory(mem["data"])
    cpu_speed = ""
    if lim is not None and mem is not None:
        cpu_speed = _cpu_speed(lim["data"], mem["data"]["types"])
    return prose("constants", cpu_memory=cpu_memory, cpu_speed=cpu_speed)


def _cpu_memory(d: dict[str, Any]) -> str:
    fit = d["fit"]
    const = d["engine_constants"]
    return prose(
        "constants_cpu_memory",
        host_mib=f"{const['LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES'] / MIB:.0f}",
        fitted_host_mib=f"{fit['fitted_cpu_host_overhead_bytes'] / MIB:.0f}",
        bare_mib=f"{fit['bare_process_bytes'] / MIB:.0f}",
        load_extra_mib=f"{fit['load_extra_bytes_median'] / MIB:.0f}",
        share=f"{const['LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION']:.2f}",
        fitted_share=f"{fit['fitted_cpu_compute_share']:.2f}",
        run_extra_mib=f"{fit['run_extra_bytes_median'] / MIB:.0f}",
        repack_types=", ".join(fit["repack_types"]) or "no type",
        fitted_max_pct=f"{fit['fitted_max_abs_err_pct']:.1f}",
        fitted_median_pct=f"{fit['fitted_median_abs_err_pct']:.1f}",
    )


def _cpu_speed(limit: dict[str, Any], types: list[dict[str, Any]]) -> str:
    ratios = [
        t["decode_tokens_per_s"] / t["projected_decode_tokens_per_s"] for t in types
    ]
    return prose(
        "constants_cpu_speed",
        ratio_min=f"{min(ratios):.2f}",
        ratio_max=f"{max(ratios):.2f}",
        ratio_of_bests=f"{limit['ratio_of_bests']:.2f}",
    )
