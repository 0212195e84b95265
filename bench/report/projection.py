"""Section 1: projected artifact sizes against published files."""

from __future__ import annotations

from bench.report._base import load_result, md_table, run_line, verdict


def section_projection(goals: list[list[str]]) -> str:
    r = load_result("projection_truth")
    out = ["## 1. Projection truth: artifact sizes vs published files\n"]
    if r is None:
        goals.append(
            ["1. size projection", "median <= 0.5%, max <= 2%", "not run", "n/a"]
        )
        return out[0] + "\nNot run.\n"
    d = r["data"]
    s = d["summary"]
    clean = s["files_without_known"]
    ok = clean["median_abs_err_pct"] <= 0.5 and clean["max_abs_err_pct"] <= 2.0
    goals.append(
        [
            "1. size projection (published files)",
            "median &#124;err&#124; <= 0.5%, max <= 2%",
            f"median {clean['median_abs_err_pct']:.3f}%, max {clean['max_abs_err_pct']:.3f}% "
            f"(n={clean['n']}, {len(d['known_different'])} known exclusions)",
            verdict(ok),
        ]
    )
    out.append(run_line(r) + "\n")
    out.append(
        "`bench/projection_truth.py`: `planner.engine.artifact_bytes` for every row of "
        "`planner/engine/data/published_sizes.json` (real files on Hugging Face and "
        "llama.cpp's published tensor sizes) against the published byte count.\n"
    )
    rows = []
    for label, key in (
        ("files (exact + rounded), all", "files"),
        ("files, without the known exclusions", "files_without_known"),
        ("exact files only", "exact_files"),
        ("llama.cpp tensor-data table (Llama-3.1-8B)", "tensor_data"),
    ):
        x = s[key]
        if not x.get("n"):
            continue
        rows.append(
            [
                label,
                str(x["n"]),
                f"{x['median_abs_err_pct']:.3f}%",
                f"{x['max_abs_err_pct']:.3f}%",
                x["worst"],
            ]
        )
    out.append(
        md_table(
            ["rows", "n", "median abs error", "max abs error", "worst row"],
            rows,
            "lrrrl",
        )
    )
    out.append(
        "\n**Known exclusions** (files built differently from today's llama.cpp, the same "
        "list `tests/planner/test_catalog.py` skips):\n"
    )
    for file, why in d["known_different"].items():
        err = next((x["err"] for x in d["rows"] if x["file"] == file), None)
        shown = f"{err:+.2f}%" if err is not None else "n/a"
        out.append(f"- `{file}`: {shown}, {why}")
    big = sorted(
        (x for x in d["rows"] if x["err"] is not None and abs(x["err"]) > 0.1),
        key=lambda x: -abs(x["err"]),
    )
    out.append("\nEvery row with an error above 0.1%:\n")
    out.append(
        md_table(
            ["model", "format", "published bytes", "projected bytes", "error"],
            [
                [
                    x["model"],
                    x["format"],
                    f"{x['published']:,}",
                    f"{x['projected']:,}",
                    f"{x['err']:+.3f}%" + (" (known)" if x["known_different"] else ""),
                ]
                for x in big
            ],  # fmt: skip
            "llrrr",
        )
    )
    return "\n".join(out) + "\n"
