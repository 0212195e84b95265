"""Section 6: the web process under load, and plan speed."""

from __future__ import annotations

import json
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

TITLE = "## 6. Web: `POST /api/v1/plans/` under 50 concurrent clients"


def plot_web(d: dict[str, Any]) -> str:
    plt = pyplot()
    from matplotlib.patches import Patch

    names = list(d["summary"])
    s = d["summary"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = ["#9aa7b8", "#63b3ed", "#2b6cb0"]
    short = ["bare DRF\n(no auth)", "bare DRF\n+ token auth", "POST\n/api/v1/plans/"]
    rps = [s[n]["rps"] for n in names]
    a1.bar(short, rps, color=colors)
    for i, v in enumerate(rps):
        a1.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=10)
    a1.set_ylabel("requests/s")
    a1.set_title(f"Throughput, {d['clients']} concurrent clients")
    p99 = [s[n]["p99_ms"] for n in names]
    p50 = [s[n]["p50_ms"] for n in names]
    a2.bar(short, p99, color=colors)
    a2.bar(short, p50, color="#2d3748", width=0.3)
    for i, (hi, lo) in enumerate(zip(p99, p50, strict=True)):
        a2.text(i, hi, f"p99 {hi:.0f}", ha="center", va="bottom", fontsize=10)
        a2.text(i + 0.17, lo, f"p50 {lo:.0f}", ha="left", va="center", fontsize=9)
    a2.set_ylabel("latency, ms")
    a2.set_title("Latency: p99 (wide bar) and p50 (narrow bar)")
    a2.legend(handles=[Patch(color="#63b3ed", label="p99"), Patch(color="#2d3748", label="p50")],
              fontsize=9, loc="upper left")  # fmt: skip
    return save_figure(fig, "web_load.png")


def section_web(goals: list[list[str]]) -> str:
    r = load_result("web_load")
    if r is None:
        goals.append(["6. plan speed", "< 5 ms / < 200 ms", "not run", "n/a"])
        return f"{TITLE}\n\nNot run.\n"
    d = r["data"]
    names = list(d["summary"])
    plan_name = names[2]
    rows = []
    for n in names:
        x = d["summary"][n]
        ratio = ""
        if n == plan_name:
            ratio = "1.00"
        rows.append(
            [
                n,
                f"{x['rps']:.0f}",
                f"{x['p50_ms']:.1f}",
                f"{x['p99_ms']:.1f}",
                str(x["errors"]),
                f"{d['summary'][plan_name]['rps'] / x['rps']:.2f}"
                if not ratio
                else ratio,
                f"{d['summary'][plan_name]['p99_ms'] / x['p99_ms']:.2f}"
                if not ratio
                else ratio,
            ]
        )
    endpoint_table = md_table(
            [
                "endpoint",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "plans req/s ÷ this",
                "plans p99 ÷ this",
            ],
            rows,
        )  # fmt: skip
    sp = d["plan_speed"]
    rows = []
    one_ok = matrix_ok = True
    for row in sp["rows"]:
        ok = row["ms"] < row["target_ms"]
        if "one format, cold" in row["case"]:
            one_ok = ok
        if "matrix" in row["case"] and "cold" in row["case"]:
            matrix_ok = ok
        rows.append(
            [
                row["case"],
                f"{row['ms']:.2f}",
                f"{row['ms'] / sp['baseline_ms']:.0f}",
                f"< {row['target_ms']}",
                "yes" if ok else "**no**",
            ]  # fmt: skip
        )
    text = prose(
        "web",
        when=run_line(r),
        workers=str(d["gunicorn_workers"]),
        threads=str(d["gunicorn_threads"]),
        clients=str(d["clients"]),
        rounds=str(d["rounds"]),
        duration_s=f"{d['duration_s']:.0f}",
        plan_body=json.dumps(d["plan_body"]),
        endpoint_table=endpoint_table,
        plot=plot_web(d),
        model=str(sp["model"]),
        baseline_ms=f"{sp['baseline_ms']:.4f}",
        speed_table=md_table(["case", "ms", "x baseline", "target ms", "met"], rows),
    )
    s = d["summary"]
    goals.append(
        [
            "6a. POST /api/v1/plans/, 50 clients",
            "report req/s and p99 vs bare DRF",
            f"{s[plan_name]['rps']:.0f} req/s, p99 {s[plan_name]['p99_ms']:.0f} ms; "
            f"{s[plan_name]['rps'] / s[names[1]]['rps']:.2f}x the req/s of bare DRF + auth, "
            f"{s[plan_name]['rps'] / s[names[0]]['rps']:.2f}x of bare DRF",
            "n/a",
        ]
    )
    goals.append(["6b. one plan (cold caches)", "< 5 ms",
                  f"{sp['rows'][0]['ms']:.2f} ms", verdict(one_ok)])  # fmt: skip
    goals.append(["6c. full matrix (cold caches)", "< 200 ms",
                  f"{sp['rows'][2]['ms']:.0f} ms ({sp['formats']} formats x {sp['gpus']} GPUs)",
                  verdict(matrix_ok)])  # fmt: skip
    return text
