"""Section 1: projected artifact sizes against published files."""

from __future__ import annotations

from bench.report._base import load_result, md_table, prose, run_line, verdict


def section_projection(goals: list[list[str]]) -> str:
    r = load_result("projection_truth")
    if r is None:
        goals.append(
            ["1. size projection", "median <= 0.5%, max <= 2%", "not run", "n/a"]
        )
        return "## 1. Projection truth: artifact sizes vs published files\n\nNot run.\n"
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
    exclusions = []
    for file, why in d["known_different"].items():
        err = next((x["err"] for x in d["rows"] if x["file"] == file), None)
        shown = f"{err:+.2f}%" if err is not None else "n/a"
        exclusions.append(f"- `{file}`: {shown}, {why}\n")
    big = sorted(
        (x for x in d["rows"] if x["err"] is not None and abs(x["err"]) > 0.1),
        key=lambda x: -abs(x["err"]),
    )
    big_rows = [
        [
            x["model"],
            x["format"],
            f"{x['published']:,}",
            f"{x['projected']:,}",
            f"{x['err']:+.3f}%" + (" (known)" if x["known_different"] else ""),
        ]
        for x in big
    ]
    return prose(
        "projection",
        when=run_line(r),
        summary_table=md_table(
            ["rows", "n", "median abs error", "max abs error", "worst row"],
            rows,
            "lrrrl",
        ),
        exclusions="".join(exclusions),
        error_table=md_table(
            ["model", "format", "published bytes", "projected bytes", "error"],
            big_rows,
            "llrrr",
        ),
    )
