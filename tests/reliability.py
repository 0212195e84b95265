"""Figures the tests measure, written to ``docs/reliability.md`` when a session ends.

Any test may record a figure::

    from tests.reliability import add, record

    record("Load test", "requests/s", 412.3)
    add("Hostile identifiers", "refused")  # a counter, +1

A section is a table in the document; its rows keep the order they were first
recorded in. ``write_report()`` runs from a ``pytest_sessionfinish`` hook; it writes
only when this session recorded something, and it keeps the sections this session
did not touch from the previous document (their data lives in a JSON comment in it),
so running one test file refreshes its own figures without erasing the others.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT_PATH = ROOT / "docs" / "reliability.md"
# Sections that always come first, in this order; any others follow alphabetically.
SECTION_ORDER = (
    "Other users' objects",
    "Hostile identifiers",
    "Schemathesis (OpenAPI fuzzing)",
    "Load test",
    "Quota",
)
_DATA_MARK = re.compile(r"<!-- reliability-data\n(.*?)\n-->", re.S)

_lock = threading.Lock()
_sections: dict[str, dict[str, Any]] = {}
_notes: dict[str, str] = {}


def record(section: str, key: str, value: Any) -> None:
    """Set one figure (a number or a short text) of a section."""
    with _lock:
        _sections.setdefault(section, {})[key] = value


def add(section: str, key: str, amount: float = 1) -> None:
    """Add ``amount`` to a counter of a section (starting at 0)."""
    with _lock:
        figures = _sections.setdefault(section, {})
        figures[key] = figures.get(key, 0) + amount


def note(section: str, text: str) -> None:
    """A sentence printed under the section's table: how the figures were measured."""
    with _lock:
        _notes[section] = text


def recorded() -> dict[str, dict[str, Any]]:
    """A copy of what this session recorded so far."""
    with _lock:
        return {name: dict(figures) for name, figures in _sections.items()}


def _previous(path: Path) -> dict[str, Any]:
    try:
        match = _DATA_MARK.search(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _order(name: str) -> tuple[int, str]:
    return (SECTION_ORDER.index(name), "") if name in SECTION_ORDER else (99, name)


def render(sections: dict[str, Any]) -> str:
    """The markdown for ``{section: {"figures": {...}, "note": ..., "at": ...}}``."""
    lines = [
        "# Reliability figures",
        "",
        "Measured by the test suite itself (`tests/reliability.py`); regenerated",
        "whenever the tests that record a section run. Do not edit by hand.",
        "",
    ]
    for name in sorted(sections, key=_order):
        section = sections[name]
        lines += [f"## {name}", "", "| Figure | Value |", "|---|---|"]
        for key, value in section["figures"].items():
            lines.append(f"| {_cell(key)} | {_cell(value)} |")
        lines.append("")
        if section.get("note"):
            lines += [section["note"], ""]
        lines += [f"_Measured {section['at']}._", ""]
    payload = json.dumps(sections, indent=1, sort_keys=True, default=str)
    lines += ["<!-- reliability-data", payload, "-->", ""]
    return "\n".join(lines)


def write_report(path: Path | None = None) -> Path | None:
    """Merge this session's figures into the document: once, and only if any."""
    target = path or Path(os.environ.get("QUANTPLAN_RELIABILITY_REPORT", REPORT_PATH))
    with _lock:
        if not _sections:
            return None
        mine = {name: dict(figures) for name, figures in _sections.items()}
        notes = dict(_notes)
        _sections.clear()
        _notes.clear()
    merge_into(target, mine, notes)
    return target


def merge_into(
    target: Path, figures: dict[str, dict[str, Any]], notes: dict[str, str]
) -> None:
    """Replace these sections in the document at ``target``, keeping the others."""
    sections = _previous(target)
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name, values in figures.items():
        sections[name] = {"figures": values, "note": notes.get(name, ""), "at": at}
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_text(render(sections), encoding="utf-8")
    os.replace(temp, target)
