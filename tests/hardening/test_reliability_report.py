"""The reliability document: sections measured now replace their old figures only."""

from __future__ import annotations

from pathlib import Path

from tests.reliability import merge_into


def test_a_run_replaces_its_own_sections_and_keeps_the_others(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    merge_into(doc, {"Load test": {"requests/s": 100.0}, "Faults": {"kill -9": 3}}, {})
    merge_into(
        doc,
        {"Load test": {"requests/s": 250.5, "p99 latency (ms)": 1200}},
        {"Load test": "2 workers."},
    )

    text = doc.read_text()
    assert "| requests/s | 250.5 |" in text
    assert "| p99 latency (ms) | 1,200 |" in text
    assert "| requests/s | 100 |" not in text
    assert "| kill -9 | 3 |" in text  # another file's section survives
    assert "2 workers." in text
    assert text.index("## Load test") < text.index("## Faults")


def test_a_broken_data_comment_starts_a_fresh_document(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text("# old\n<!-- reliability-data\n{not json\n-->\n")
    merge_into(doc, {"Quota": {"refused": 2}}, {})
    assert "| refused | 2 |" in doc.read_text()
