"""What every section of the benchmark report shares: loading a result file, the
line that says when and under what load it ran, goal verdicts, Markdown tables and
matplotlib figures saved under docs/bench/."""

from __future__ import annotations

import json
import string
import time
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR, ROOT

PLOTS_DIR = ROOT / "docs" / "bench"
# The report's prose, as string.Template files ($name is a value Python formats).
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
GIB = 1 << 30


def load_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def run_line(result: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(result["started"]))
    lb, la = result["load_before"], result["load_after"]
    mode = "quick" if result.get("quick") else "full"
    return (
        f"*Run {started} ({mode}), {result['wall_s']:.0f} s; load average "
        f"{lb[0]:.1f} before, {la[0]:.1f} after, on {result['machine']['cores']} cores.*"
    )


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "savefig.dpi": 110,
        }
    )
    return plt


def save_figure(fig: Any, name: str) -> str:
    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = PLOTS_DIR / name
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"bench/{name}"


def prose(name: str, **values: str) -> str:
    """bench/templates/<name>.md filled with already formatted values (all required)."""
    text = (TEMPLATES_DIR / f"{name}.md").read_text(encoding="utf-8")
    return string.Template(text).substitute(values)
