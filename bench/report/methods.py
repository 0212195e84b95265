"""Section 7: quantization methods side by side on the sample."""

from __future__ import annotations

from typing import Any

from bench.report._base import (
    load_result,
    md_table,
    prose,
    pyplot,
    run_line,
    save_figure,
)
from planner.engine.quality import perplexity_change_pct

TITLE = "## 7. Quantization methods on the same model and text"


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
    if r is None:
        goals.append(["7. methods table", "table", "not run", "n/a"])
        return f"{TITLE}\n\nNot run.\n"
    d = r["data"]
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
    table = md_table(
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
    good = [x for x in d["rows"] if "error" not in x]
    reference = ""
    if good:
        reference = prose(
            "methods_reference",
            torch_ppl=f"{_base_ppl(good, 'torch'):.3f}",
            llama_ppl=f"{_base_ppl(good, 'llama.cpp'):.3f}",
            plot=plot_methods(good),
        )
    text = prose(
        "methods",
        when=run_line(r),
        preset=str(d["preset"]),
        calibration=str(d["calibration"]),
        awq_calibration=str(d["awq_calibration"]),
        eval=str(d["eval"]),
        threads=str(d["threads"]),
        table=table,
        parameters=f"{params.total:,}",
        embedding=f"{params.embedding:,}",
        embedding_mb=f"{2 * params.embedding / 1e6:.0f}",
        reference=reference,
    )
    goals.append(
        ["7. methods table", "size, KLD, PPL change, time", f"{len(good)} rows", "n/a"]
    )
    return text


def _base_ppl(rows: list[dict[str, Any]], measured_by: str) -> float:
    """The reference perplexity the rows measured by ``measured_by`` were set against."""
    return next(
        (x["base_ppl"] for x in rows if x["measured_by"] == measured_by), float("nan")
    )
