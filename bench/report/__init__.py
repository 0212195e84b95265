"""Render docs/benchmarks.md and docs/bench/*.png from var/bench/results/*.json.

Called by ``bench/run_all.py``; ``python -m bench.report`` re-renders alone.
Sections whose result file is missing say so instead of showing old figures.
One module per section (``projection``, ``memory``, ``overhead``, ``limit``,
``evaluation``, ``web``, ``methods``, ``constants``, ``jobs``) over ``_base``. The
prose is in ``bench/templates/*.md`` (``string.Template``: ``${name}`` is a value the
section's Python has formatted); Python loads the results, computes and formats
the numbers, builds the tables and plots, and picks which paragraphs apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench._common import RESULTS_DIR
from bench.report._base import GIB, load_result, md_table, prose
from bench.report.constants import section_constants
from bench.report.evaluation import section_eval
from bench.report.jobs import section_job_measurements
from bench.report.limit import section_limit
from bench.report.memory import section_memory
from bench.report.methods import section_methods
from bench.report.overhead import section_overhead
from bench.report.projection import section_projection
from bench.report.web import section_web

__all__ = ["render"]


def render(output: Path) -> Path:
    """Write the whole report and return its path."""
    run = (
        json.loads((RESULTS_DIR / "run_all.json").read_text())
        if (RESULTS_DIR / "run_all.json").is_file()
        else {}
    )
    goals: list[list[str]] = []
    limit = load_result("decode_limit")
    sections: list[Callable[[], str]] = [
        lambda: section_projection(goals),
        lambda: section_memory(goals, limit),
        lambda: section_overhead(goals),
        lambda: section_limit(goals),
        lambda: section_eval(goals),
        lambda: section_web(goals),
        lambda: section_methods(goals),
        lambda: section_job_measurements(goals),
    ]
    bodies = [make() for make in sections]
    machine = {}
    for name in ("gguf_memory", "web_load", "projection_truth"):
        r = load_result(name)
        if r:
            machine = r["machine"]
            break
    machine_line = (
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_bytes'] / GIB:.1f} GiB RAM, Python {machine['python']}.\n\n"
        if machine
        else ""
    )
    last_run = ""
    if run.get("runs"):
        total = run.get("total_s")
        mode = "quick" if run.get("quick") else "full"
        line = f"Last run: {mode}" + (f", {total / 60:.1f} min in all" if total else "")
        failed = {n: r for n, r in run["runs"].items() if r.get("status") != "ok"}
        if failed:
            line += "; failed: " + ", ".join(
                f"{n} ({r['status']})" for n, r in failed.items()
            )
        last_run = line + ".\n\n"
    head = prose(
        "head",
        machine=machine_line,
        last_run=last_run,
        goals=md_table(["goal", "target", "measured", "status"], goals, "llll"),
    ).removesuffix("\n")
    text = head + "\n\n" + "\n".join(bodies) + section_constants()
    failures = [
        (n, r) for n, r in (run.get("runs") or {}).items() if r.get("status") != "ok"
    ]
    for name, r in failures:
        text += (
            f"\n### {name} failed\n\n```\n" + "\n".join(r.get("tail", [])) + "\n```\n"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return output
