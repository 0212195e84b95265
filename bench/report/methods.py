"""Section 7: quantization methods side by side on the sample."""

from __future__ import annotations

from typing import Any

from bench.report._base import load_result, md_table, pyplot, run_line, save_figure
from planner.engine.quality import perplexity_change_pct


def plot_methods(rows: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2))
    style = {"rtn": ("#e53e3e", "s"), "awq": ("#38a169", "^"), "gptq": ("#805ad5", "D"),
             "gguf": ("#2b6cb0", "o")}  # fmt: skip
    seen = set()
    for row in rows:
        if "error" in row or not row.get("kld"):
            continue
        color, marker = style.get(row["method"], ("#718096", "x"))
        label = row["method"].upper() if row["method"] not in seen else None
        seen.add(row["method"])
        ax.scatter(row["artifact_bytes"] / 1e6, row["kld"], color=color, marker=marker,
                   s=60, label=label, zorder=3)  # fmt: skip
        name = row["format"].replace("gguf-", "")
        ax.annotate(name, (row["artifact_bytes"] / 1e6, row["kld"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("artifact size, MB (10^6 bytes)")
    ax.set_ylabel("mean KL divergence to the F16 reference (nats, log scale)")
    ax.set_title("SmolLM2-135M: size vs quality loss by method (lower-left is better)")
    ax.legend()
    return save_figure(fig, "quant_methods.png")


def section_methods(goals: list[list[str]]) -> str:
    r = load_result("quant_methods")
    out = ["## 7. Quantization methods on the same model and text\n"]
    if r is None:
        goals.append(["7. methods table", "table", "not run", "n/a"])
        return out[0] + "\nNot run.\n"
    d = r["data"]
    out.append(run_line(r) + "\n")
    out.append(
        "`bench/quant_methods.py --preset "
        f"{d['preset']}`. The sample GGUF is converted to a float16 Hugging Face "
        "directory (the reference); RTN, AWQ (autoawq) and GPTQ (ours) quantize it with "
        f"calibration text disjoint from the evaluation text (GPTQ {d['calibration']}, AWQ "
        f"{d['awq_calibration']} samples x tokens), and the GGUF backend produces each "
        "type from the same directory. Every row is scored on the same held-out tokens "
        f"({d['eval']}, {d['threads']} threads): torch rows by `torch_eval` against the "
        "float16 model, GGUF rows by llama.cpp against their own F16 GGUF (the same "
        "weights). *MB* counts every file of the artifact (a torch checkpoint "
        "directory includes its tokenizer and config, ~3.6 MB); *projected MB* is "
        "`artifact_bytes` (the weights file). *Time* is the quantization alone; the "
        "evaluation time is shown apart.\n"
    )
    from planner.engine import get_model, parameter_breakdown

    params = parameter_breakdown(get_model("smollm2-135m-instruct").spec)
    rows = []
    for row in d["rows"]:
        if "error" in row:
            rows.append(
                [row["format"], "failed", "", "", "", "", "", "", "", row["error"][:80]]
            )
            continue
        label = row["label"]
        dppl = perplexity_change_pct(row["ppl"], row["base_ppl"]) or 0.0
        proj = row.get("projected_bytes")
        rows.append(
            [
                label,
                f"{row['artifact_bytes'] / 1e6:.1f}",
                f"{8 * row['artifact_bytes'] / params.total:.2f}",
                f"{proj / 1e6:.1f}" if proj else "-",
                f"{row['kld']:.4f}",
                f"{row['ppl']:.3f} ({dppl:+.2f}%)",
                f"{row['top1']:.3f}",
                f"{row['quantize_s']:.0f}",
                f"{row['evaluate_s']:.0f}",
                f"{row['measured_by']}"
                + (f", calib {row['calibration']}" if row.get("calibration") else ""),
            ]
        )
    out.append(
        md_table(
            [
                "format",
                "MB",
                "bits/weight",
                "projected MB",
                "KLD",
                "PPL (change)",
                "top-1",
                "quantize s",
                "evaluate s",
                "measured by",
            ],
            rows,
            "lrrrrrrrrl",
        )
    )
    out.append(
        "\n*Bits/weight* = 8 x artifact bytes / "
        f"{params.total:,} parameters, everything included. Two things about this "
        "model shape the table: the AWQ, GPTQ and RTN checkpoints keep the tied "
        f"embedding / output matrix ({params.embedding:,} weights, "
        f"{2 * params.embedding / 1e6:.0f} MB) in float16, as those formats do, so "
        "their int4 is ~7 bits/weight overall; and the hidden size 576 is not a "
        "multiple of 256, so llama.cpp gives most matrices of the K-quant types a "
        "fallback type (Q4_K_M is mostly Q5_0 here, which is why it beats Q4_0 and "
        "roughly matches Q5_K_M). On a 7B model both effects shrink.\n"
    )
    good = [x for x in d["rows"] if "error" not in x]
    if good:
        out.append(
            f"\nReference perplexity: torch float16 "
            f"{next((x['base_ppl'] for x in good if x['measured_by'] == 'torch'), float('nan')):.3f}, "
            f"llama.cpp F16 "
            f"{next((x['base_ppl'] for x in good if x['measured_by'] == 'llama.cpp'), float('nan')):.3f}.\n"
        )
        out.append(f"\n![methods]({plot_methods(good)})\n")
    goals.append(
        ["7. methods table", "size, KLD, PPL change, time", f"{len(good)} rows", "n/a"]
    )
    return "\n".join(out) + "\n"
