"""Section 3: what the product adds around llama.cpp (job, worker, web)."""

from __future__ import annotations

from typing import Any

from bench.report._base import (
    load_result,
    md_table,
    prose,
    pyplot,
    run_line,
    save_figure,
    verdict,
)


def plot_overhead(d: dict[str, Any]) -> str:
    plt = pyplot()
    pair = sorted(d["pairs"], key=lambda x: x["ratio"])[len(d["pairs"]) // 2]
    script = pair["script"]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colors = ["#2b6cb0", "#63b3ed", "#ed8936", "#e53e3e", "#38a169", "#805ad5",
              "#d69e2e", "#718096", "#319795", "#b83280"]  # fmt: skip
    left = 0.0
    s_parts = [
        ("interpreter + imports", script["wall_s"] - script["work_s"]),
        ("quantize", script["quantize_s"]),
        ("evaluate", script["evaluate_s"]),
    ]
    for i, (label, v) in enumerate(s_parts):
        ax.barh(1, v, left=left, color=colors[i % len(colors)], edgecolor="white")
        if v > 3:
            ax.text(
                left + v / 2,
                1,
                label,
                ha="center",
                va="center",
                color="white",
                fontsize=9,
            )
        left += v
    left = 0.0
    other = 0.0
    for label, v in pair["phases"].items():
        if label.startswith("child: quantize"):
            ax.barh(0, v, left=left, color="#2b6cb0", edgecolor="white")
            ax.text(left + v / 2, 0, "child: quantize + evaluate", ha="center",
                    va="center", color="white", fontsize=9)  # fmt: skip
            left += v
        else:
            other += max(0.0, v)
    ax.barh(0, other, left=left, color="#e53e3e", edgecolor="white")
    ax.text(
        left + other + 0.5, 0, f"everything else {other:.1f} s", va="center", fontsize=9
    )
    ax.set_yticks([0, 1], ["product (API → worker → child)", "plain script"])
    ax.set_xlabel("seconds")
    ax.set_title(f"GGUF Q4_K_M job end to end: {pair['ratio']:.3f}x the plain script")
    return save_figure(fig, "product_overhead.png")


def section_overhead(goals: list[list[str]]) -> str:
    r = load_result("product_overhead")
    if r is None:
        goals.append(["3. product overhead", "<= 1.05x", "not run", "n/a"])
        return (
            "## 3. Overhead of the product: a GGUF Q4_K_M job end to end\n\nNot run.\n"
        )
    d = r["data"]
    rows = [
        [
            str(i + 1),
            f"{p['script_s']:.1f}",
            f"{p['product_s']:.1f}",
            f"{p['ratio']:.3f}x",
        ]
        for i, p in enumerate(d["pairs"])
    ]
    text = prose(
        "overhead",
        when=run_line(r),
        poll_s=str(d["poll_s"]),
        max_chunks=str(d["max_chunks"] or "all"),
        rounds_table=md_table(["round", "script s", "product s", "ratio"], rows),
        ratio_of_bests=f"{d['ratio_of_bests']:.3f}",
        ratio_median=f"{d['ratio_median']:.3f}",
        own_s=f"{d.get('product_own_s_median', float('nan')):.2f}",
        ratio_own=f"{d.get('ratio_own_median', float('nan')):.3f}",
        phases_table=md_table(
            ["phase", "s"], [[k, f"{v:.2f}"] for k, v in d["phases"].items()], "lr"
        ),
        plot=plot_overhead(d),
    )
    goals.append(
        [
            "3. product vs plain script",
            "<= 1.05x",
            f"{d['ratio_of_bests']:.3f}x (bests), {d['ratio_median']:.3f}x (median pair); "
            f"product's own steps {d.get('ratio_own_median', float('nan')):.3f}x",
            verdict(d.get("ratio_own_median", d["ratio_of_bests"]) <= 1.05),
        ]
    )
    return text
