"""Section 5: Quantplan's evaluation against llama.cpp's own tools."""

from __future__ import annotations

from pathlib import Path

from bench.report._base import load_result, md_table, prose, run_line, verdict

TITLE = "## 5. Evaluation speed and agreement with llama.cpp's `llama-perplexity`"


def section_eval(goals: list[list[str]]) -> str:
    r = load_result("eval_agreement")
    if r is None:
        goals.append(["5. eval agreement", "0.5% / 1.1x", "not run", "n/a"])
        return f"{TITLE}\n\nNot run.\n"
    d = r["data"]
    if "unavailable" in d:
        goals.append(
            ["5. eval agreement", "0.5% / 1.1x", "llama-perplexity missing", "n/a"]
        )
        return prose("evaluation_unavailable", when=run_line(r), why=d["unavailable"])
    s = d["summary"]
    rows = []
    worst_err = 0.0
    worst_ratio = 0.0
    for t, x in s["ppl"].items():
        worst_err = max(worst_err, abs(x["err_pct"]))
        worst_ratio = max(worst_ratio, x["time_ratio_pass"])
        rows.append(
            [
                f"PPL {t}",
                f"{x['ours']:.4f}",
                f"{x['llama_cpp']:.4f}",
                f"{x['err_pct']:+.4f}%",
                f"{x['ours_pass_s']:.2f} / {x['ours_process_s']:.2f}",
                f"{x['llama_cpp_s']:.2f}",
                f"{x['time_ratio_pass']:.2f}x / {x['time_ratio_process']:.2f}x",
            ]
        )
    k = s["kld"]
    kt = s["kld_time"]
    labels = {"ppl_q": "PPL Q4_K_M (KLD run)", "ppl_base": "PPL F16 (KLD run)",
              "kld": "mean KLD Q4_K_M ‖ F16", "same_top_pct": "top-1 agreement %"}  # fmt: skip
    for key, label in labels.items():
        x = k[key]
        if x["llama_cpp"] is None:
            rows.append([label, f"{x['ours']:.5f}", "n/a", "", "", "", ""])
            continue
        worst_err = max(worst_err, abs(x["err_pct"]))
        timing = ["", "", ""]
        if key == "kld":
            worst_ratio = max(worst_ratio, kt["time_ratio_pass"])
            timing = [
                f"{kt['ours_pass_s']:.2f} / {kt['ours_process_s']:.2f}",
                f"{kt['llama_cpp_s']:.2f}",
                f"{kt['time_ratio_pass']:.2f}x / {kt['time_ratio_process']:.2f}x",
            ]
        rows.append(
            [
                label,
                f"{x['ours']:.5f}",
                f"{x['llama_cpp']:.5f}",
                f"{x['err_pct']:+.4f}%",
                *timing,
            ]  # fmt: skip
        )
    table = md_table(
            [
                "figure",
                "Quantplan",
                "llama.cpp",
                "difference",
                "Quantplan s (pass / process)",
                "llama.cpp s",
                "time ratio (pass / process)",
            ],
            rows,
        )  # fmt: skip
    notes = []
    without = []
    for t, x in s["ppl"].items():
        lsm = x.get("ours_log_softmax_s")
        if lsm:
            without.append((x["ours_pass_s"] - lsm) / x["llama_cpp_s"])
            notes.append(
                f"{t} {lsm:.2f} s of {x['ours_pass_s']:.2f} s (llama-perplexity in all: "
                f"{x['llama_cpp_s']:.2f} s)"
            )
    scoring = ""
    if notes:
        scoring = prose(
            "evaluation_scoring",
            half_ctx=str(d["n_ctx"] // 2),
            notes="; ".join(notes),
            ratio_min=f"{min(without):.2f}",
            ratio_max=f"{max(without):.2f}",
        )
    text = prose(
        "evaluation",
        when=run_line(r),
        n_ctx=str(d["n_ctx"]),
        chunks=str(d["chunks"] or "all"),
        binary=Path(d["binary"]).name,
        rounds=str(d["rounds"]),
        table=table,
        scoring=scoring,
    )
    goals.append(
        [
            "5. eval vs llama-perplexity",
            "same numbers within 0.5%, time <= 1.1x",
            f"worst difference {worst_err:.3f}%, worst time ratio {worst_ratio:.2f}x (pass)",
            verdict(worst_err <= 0.5 and worst_ratio <= 1.1),
        ]
    )
    return text
