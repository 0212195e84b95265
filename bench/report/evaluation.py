"""Section 5: Quantplan's evaluation against llama.cpp's own tools."""

from __future__ import annotations

from pathlib import Path

from bench.report._base import load_result, md_table, run_line, verdict


def section_eval(goals: list[list[str]]) -> str:
    r = load_result("eval_agreement")
    out = ["## 5. Evaluation speed and agreement with llama.cpp's `llama-perplexity`\n"]
    if r is None:
        goals.append(["5. eval agreement", "0.5% / 1.1x", "not run", "n/a"])
        return out[0] + "\nNot run.\n"
    d = r["data"]
    out.append(run_line(r) + "\n")
    if "unavailable" in d:
        goals.append(
            ["5. eval agreement", "0.5% / 1.1x", "llama-perplexity missing", "n/a"]
        )
        return (
            "\n".join(out)
            + f"\nllama-perplexity is not available: {d['unavailable']}\n"
        )
    s = d["summary"]
    out.append(
        "`bench/eval_agreement.py`. Same files (sample F16 and Q4_K_M), same text "
        f"(`default_eval_text()`), n_ctx {d['n_ctx']}, "
        f"{d['chunks'] or 'all'} chunks, 2 threads; llama.cpp's tool is "
        f"`{Path(d['binary']).name}` built from the llama.cpp that llama-cpp-python "
        "vendors (`ensure_llama_perplexity`). Each side in its own fresh process, "
        f"{d['rounds']} round(s) alternating, best time. *Pass* = Quantplan's time after "
        "its imports; *process* = its whole process including the Python start-up.\n"
    )
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
    out.append(
        md_table(
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
    )
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
    if notes:
        out.append(
            "\nWhere Quantplan's perplexity pass spends its time besides llama.cpp's "
            "decode: the scoring of each chunk's "
            f"{d['n_ctx'] // 2} x vocabulary logits (numpy, log-sum-exp and the "
            "target's logit only, row blocks spread over the job's threads as "
            "llama-perplexity spreads its own) takes " + "; ".join(notes) + ". "
            "Without that step the pass would take "
            f"{min(without):.2f}–{max(without):.2f}x llama-perplexity's time.\n"
        )
    out.append(
        "\nThe KLD timing compares `evaluate_gguf` (both models in one process, "
        "generation cut to 1 token) with two `llama-perplexity` processes "
        "(`--kl-divergence-base` on F16, then `--kl-divergence` on Q4_K_M).\n"
    )
    goals.append(
        [
            "5. eval vs llama-perplexity",
            "same numbers within 0.5%, time <= 1.1x",
            f"worst difference {worst_err:.3f}%, worst time ratio {worst_ratio:.2f}x (pass)",
            verdict(worst_err <= 0.5 and worst_ratio <= 1.1),
        ]
    )
    return "\n".join(out) + "\n"
