"""Section 4: decode speed against this machine's bandwidth limit."""

from __future__ import annotations

from typing import Any

from bench._common import MIB
from bench.report._base import load_result, md_table, prose, run_line, verdict


def section_limit(goals: list[list[str]]) -> str:
    r = load_result("decode_limit")
    if r is None:
        goals.append(["4. decode vs bandwidth limit", ">= 0.7", "not run", "n/a"])
        return "## 4. The limit: decode speed against memory bandwidth\n\nNot run.\n"
    d = r["data"]
    rows = []
    for i, s in enumerate(d["samples"]):
        bw = s["bandwidth"]
        rows.append(
            [
                str(i + 1),
                f"{bw['read_bytes_per_s'] / 1e9:.1f} ({bw['read_kernel']})",
                f"{bw['copy_bytes_per_s'] / 1e9:.1f}",
                f"{s['limit_tokens_per_s']:.1f}",
                f"{s['decode_tokens_per_s']:.1f}",
                f"{s['ratio']:.2f}",
                f"{s['decode_1_thread_tokens_per_s']:.1f}",
                f"{s['load'][0]:.1f}",
            ]
        )
    ok = d["ratio_of_bests"] >= 0.7
    text = prose(
        "limit",
        when=run_line(r),
        tensor_mib=f"{d['tensor_bytes'] / MIB:.1f}",
        rounds_table=md_table(
            [
                "round",
                "read GB/s",
                "copy GB/s",
                "limit tok/s",
                "decode tok/s (2 threads)",
                "ratio",
                "decode tok/s (1 thread)",
                "load avg",
            ],
            rows,
        ),  # fmt: skip
        ratio_of_bests=f"{d['ratio_of_bests']:.2f}",
        ratio_median=f"{d['ratio_median']:.2f}",
        bound=_compute_bound(load_result("gguf_memory")),
        threads=_threads(d),
    )
    goals.append(
        [
            "4. Q4_K_M decode vs bandwidth limit",
            ">= 0.7 of the limit",
            f"{d['ratio_of_bests']:.2f} (best), {d['ratio_median']:.2f} (median round)",
            verdict(ok),
        ]
    )
    return text


def _compute_bound(mem: dict[str, Any] | None) -> str:
    """Why decode here is compute-bound: F16 against Q4_K_M from section 2."""
    if mem is None:
        return ""
    by_type = {t["type"]: t for t in mem["data"]["types"]}
    if "F16" not in by_type or "Q4_K_M" not in by_type:
        return ""
    f16, q4 = by_type["F16"], by_type["Q4_K_M"]
    f16_tps = f16["decode_tokens_per_s"]
    return prose(
        "limit_compute_bound",
        bytes_ratio=f"{f16['tensor_bytes'] / q4['tensor_bytes']:.1f}",
        speed_ratio=f"{q4['decode_tokens_per_s'] / f16_tps:.2f}",
        q4_tps=f"{q4['decode_tokens_per_s']:.0f}",
        f16_tps=f"{f16_tps:.0f}",
        f16_of_limit=f"{f16_tps / f16['bandwidth_limit_tokens_per_s']:.2f}",
    )


def _threads(d: dict[str, Any]) -> str:
    """One thread against two: on a busy machine one can win."""
    best1 = d.get("best_decode_1_thread_tokens_per_s")
    if not best1:
        return ""
    if best1 > d["best_decode_tokens_per_s"]:
        loads = [s["load"][0] for s in d["samples"]]
        return prose(
            "limit_one_thread_faster",
            one_tps=f"{best1:.1f}",
            two_tps=f"{d['best_decode_tokens_per_s']:.1f}",
            load_min=f"{min(loads):.1f}",
            load_max=f"{max(loads):.1f}",
        )
    return prose("limit_one_thread", one_tps=f"{best1:.1f}")
