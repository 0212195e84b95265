"""Job measurements: repeatability and memory in the job itself."""

from __future__ import annotations

from bench.report._base import load_result, md_table, prose, verdict


def section_job_measurements(goals: list[list[str]]) -> str:
    """Repeatability of the jobs' own speed figures, and their memory vs projection."""
    r = load_result("job_measurements")
    title = "## Job measurements: repeatability and memory in the job itself\n"
    if r is None:
        goals.append(["three identical jobs agree", "<= 1.10", "not run", "n/a"])
        goals.append(["job memory vs projection", "<= 5%", "not run", "n/a"])
        return title + "\nNot run.\n"
    d = r["data"]
    rep = d["repeat"]
    worst_ratio = max(rep["pp_ratio"], rep["tg_ratio"])
    goals.append(
        ["three identical jobs agree (max/min of medians)", "<= 1.10",
         f"pp {rep['pp_ratio']:.3f}, tg {rep['tg_ratio']:.3f}", verdict(worst_ratio <= 1.10)]
    )  # fmt: skip
    memory = d.get("memory") or []
    worst_mem = max((abs(m["memory_err_pct"]) for m in memory), default=None)
    goals.append(
        ["job memory vs projection (every type, 2 contexts)", "<= 5%",
         f"worst {worst_mem:.1f}%" if worst_mem is not None else "not run",
         verdict(worst_mem <= 5.0) if worst_mem is not None else "n/a"]
    )  # fmt: skip
    rows = [
        [str(x["run"]), f"{x['pp_median']:.1f}", f"{x['tg_median']:.1f}",
         f"{x['load_before'][0]:.2f} / {x['load_after'][0]:.2f}"]
        for x in rep["runs"]
    ]  # fmt: skip
    mem_rows = [
        [m["format"], str(m["ctx"]), f"{m['peak_memory_bytes'] / 2**20:.1f}",
         f"{m['projected_memory_bytes'] / 2**20:.1f}", f"{m['memory_err_pct']:+.1f}%",
         f"{m['job_peak_memory_bytes'] / 2**20:.1f}", f"{m['tg_ratio']:.2f}"]
        for m in memory
    ]  # fmt: skip
    return prose(
        "jobs",
        notes=" ".join(r.get("notes", [])),
        repeat_table=md_table(
            ["job", "pp tok/s (median)", "tg tok/s (median)", "load before / after"],
            rows,
            "rrrr",
        ),
        memory_table=md_table(
            [
                "format",
                "n_ctx",
                "serving peak MiB",
                "projected MiB",
                "error",
                "job peak MiB",
                "tg measured / roofline",
            ],
            mem_rows,
            "lrrrrrr",
        ),  # fmt: skip
    )
