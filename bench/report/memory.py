"""Section 2: GGUF file size, peak memory and decode speed, projected vs measured."""

from __future__ import annotations

from typing import Any

from bench._common import MIB
from bench.report._base import (
    load_result,
    md_table,
    prose,
    pyplot,
    run_line,
    save_figure,
    verdict,
)

TITLE = "## 2. Projected vs measured on this machine: GGUF size, memory, speed"


def plot_memory(d: dict[str, Any]) -> str:
    plt = pyplot()
    types = [t["type"] for t in d["types"]]
    contexts = d["contexts"]
    fig, axes = plt.subplots(
        1, len(contexts), figsize=(4.6 * len(contexts), 4.8), sharey=True, squeeze=False
    )
    x = list(range(len(types)))
    w = 0.38
    bare = d["baseline_rss"] / MIB
    allowance = d["engine_constants"]["LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES"] / MIB
    for ax, ctx in zip(axes[0], contexts, strict=True):
        cells = [next(c for c in t["contexts"] if c["ctx"] == ctx) for t in d["types"]]
        net = [c["net_rss"] / MIB for c in cells]
        rest = [(c["projected_total"] / MIB) - allowance for c in cells]
        left = [i - w / 2 for i in x]
        right = [i + w / 2 for i in x]
        ax.bar(left, [allowance] * len(x), w, color="#cbd5e0", edgecolor="white",
               label=f"projected: process allowance ({allowance:.0f} MiB)")  # fmt: skip
        ax.bar(left, rest, w, bottom=[allowance] * len(x), color="#718096",
               edgecolor="white", label="projected: weights + repack + KV + compute")  # fmt: skip
        ax.bar(right, [bare] * len(x), w, color="#90cdf4", edgecolor="white",
               label=f"measured: bare process ({bare:.0f} MiB)")  # fmt: skip
        ax.bar(right, net, w, bottom=[bare] * len(x), color="#2b6cb0",
               edgecolor="white", label="measured: the rest of the peak RSS")  # fmt: skip
        ax.set_title(f"n_ctx = {ctx}")
        ax.set_xticks(x, types, rotation=45, ha="right")
    axes[0][0].set_ylabel("MiB")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9,
               bbox_to_anchor=(0.5, -0.12), frameon=False)  # fmt: skip
    fig.suptitle(
        "SmolLM2-135M GGUF, llama.cpp on this CPU: projected (left bar) vs "
        "measured peak RSS (right bar)"
    )
    return save_figure(fig, "gguf_memory.png")


def plot_decode(d: dict[str, Any], limit: dict[str, Any] | None) -> str:
    plt = pyplot()
    types = [t["type"] for t in d["types"]]
    x = list(range(len(types)))
    w = 0.27
    fig, ax = plt.subplots(figsize=(9, 4.4))
    ax.bar([i - w for i in x], [t["bandwidth_limit_tokens_per_s"] for t in d["types"]], w,
           label="limit: read bandwidth / tensor bytes", color="#cbd5e0")  # fmt: skip
    ax.bar(x, [t["projected_decode_tokens_per_s"] for t in d["types"]], w,
           label="engine roofline (this machine's bandwidth)", color="#9aa7b8")  # fmt: skip
    ax.bar([i + w for i in x], [t["decode_tokens_per_s"] for t in d["types"]], w,
           label="measured, 2 threads (best of runs)", color="#2b6cb0")  # fmt: skip
    ax.set_xticks(x, types)
    ax.set_ylabel("decode tokens/s")
    bw = d["bandwidth"]["read_bytes_per_s"] / 1e9
    title = f"Decode speed vs limits (read bandwidth {bw:.1f} GB/s measured in the same run)"
    ax.set_title(title)
    ax.legend(fontsize=9)
    return save_figure(fig, "gguf_decode.png")


def section_memory(goals: list[list[str]], limit: dict[str, Any] | None) -> str:
    r = load_result("gguf_memory")
    if r is None:
        goals.append(["2. GGUF size / memory", "within 5%", "not run", "n/a"])
        return f"{TITLE}\n\nNot run.\n"
    d = r["data"]
    size_rows = []
    size_ok = True
    for t in d["types"]:
        size_ok &= abs(t["size_err_pct"]) <= 5
        size_rows.append(
            [
                t["type"],
                f"{t['file_bytes']:,}",
                f"{t['projected_file_bytes']:,}",
                f"{t['size_err_pct']:+.4f}%",
                f"{t['tensor_bytes']:,}",
            ]
        )
    size_table = md_table(
        ["type", "file bytes", "artifact_bytes()", "error", "tensor-data bytes"],
        size_rows,
    )
    mem_rows = []
    worst_raw = 0.0
    for t in d["types"]:
        for c in t["contexts"]:
            worst_raw = max(worst_raw, abs(c["err_raw_pct"]))
            b = c.get("buffers_mib", {})
            mem_rows.append(
                [
                    t["type"],
                    str(c["ctx"]),
                    f"{c['peak_rss'] / MIB:.1f}",
                    f"{c['projected_total'] / MIB:.1f}",
                    f"{c['err_raw_pct']:+.1f}%",
                    f"{b.get('model:CPU_Mapped', 0):.1f} / {c['projected_weights'] / MIB:.1f}",
                    f"{b.get('model:CPU_REPACK', 0):.1f} / {c.get('projected_repack', 0) / MIB:.1f}",
                    f"{b.get('KV:CPU', 0):.1f} / {c['projected_kv'] / MIB:.1f}",
                    f"{(c['peak_rss'] - c['rss_loaded']) / MIB:.1f} / {c['projected_compute'] / MIB:.1f}",
                ]
            )
    memory_table = md_table(
            [
                "type",
                "n_ctx",
                "peak RSS",
                "projected",
                "error",
                "mapped / weights",
                "repack buf / repack",
                "KV buf / KV",
                "touched compute / compute",
            ],
            mem_rows,
        )  # fmt: skip
    memory_plot = plot_memory(d)
    goals.append(
        [
            "2a. GGUF file size vs artifact_bytes",
            "within 5%",
            f"worst {max(abs(t['size_err_pct']) for t in d['types']):.4f}%",
            verdict(size_ok),
        ]
    )
    goals.append(
        [
            "2b. peak RSS vs estimate_memory (llama.cpp, CPU)",
            "within 5%",
            f"worst {worst_raw:.1f}% (24 measurements: 8 types x 3 contexts)",
            verdict(worst_raw <= 5),
        ]
    )
    prop = d.get("fit") or {}
    parts = ""
    if prop:
        rows = []
        for q in prop["parts"]:
            rows.append(
                [q["type"], str(q["ctx"]), f"{q['peak'] / MIB:.1f}",
                 f"{d['baseline_rss'] / MIB:.1f}", f"{q['mapped'] / MIB:.1f}",
                 f"{q['repack'] / MIB:.1f}", f"{q['kv'] / MIB:.1f}",
                 f"{q['load_extra'] / MIB:.1f}", f"{q['run_extra'] / MIB:.1f}",
                 f"{q['fitted_estimate'] / MIB:.1f}", f"{q['fitted_err_pct']:+.1f}%"]
            )  # fmt: skip
        parts = prose(
            "memory_parts",
            fitted_host_mib=f"{prop['fitted_cpu_host_overhead_bytes'] / MIB:.0f}",
            fitted_share=f"{prop['fitted_cpu_compute_share']:.2f}",
            parts_table=md_table(
                [
                    "type",
                    "n_ctx",
                    "peak RSS",
                    "bare process",
                    "mmap'd weights",
                    "repack copy",
                    "KV",
                    "load extra",
                    "run extra",
                    "fitted estimate",
                    "error",
                ],
                rows,
            ),  # fmt: skip
        )

    spd_rows = []
    for t in d["types"]:
        spd_rows.append(
            [
                t["type"],
                f"{t['decode_tokens_per_s']:.1f}",
                f"{t['projected_decode_tokens_per_s']:.1f}",
                f"{t['decode_tokens_per_s'] / t['projected_decode_tokens_per_s']:.2f}",
                f"{t['bandwidth_limit_tokens_per_s']:.1f}",
                f"{t['decode_tokens_per_s'] / t['bandwidth_limit_tokens_per_s']:.2f}",
            ]
        )
    speed_table = md_table(
            [
                "type",
                "measured tok/s",
                "engine roofline",
                "measured / roofline",
                "bandwidth limit",
                "measured / limit",
            ],
            spd_rows,
        )  # fmt: skip
    return prose(
        "memory",
        when=run_line(r),
        baseline_mib=f"{d['baseline_rss'] / MIB:.1f}",
        host_mib=f"{d['engine_constants']['LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES'] / MIB:.0f}",
        size_table=size_table,
        memory_table=memory_table,
        memory_plot=memory_plot,
        parts=parts,
        read_gbs=f"{d['bandwidth']['read_bytes_per_s'] / 1e9:.1f}",
        read_kernel=str(d["bandwidth"]["read_kernel"]),
        speed_table=speed_table,
        decode_plot=plot_decode(d, limit),
    )
