"""CI (``.ci/run``) runs ``make lint`` before the tests, and fails when lint fails."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_make_lint_before_make_test() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith(("#", "echo"))
    ]
    lint = lines.index("make lint")
    first_test = next(i for i, line in enumerate(lines) if line.startswith("make test"))

    assert lint < first_test
    assert "set -euo pipefail" in lines  # a lint failure stops the run


def test_make_lint_checks_ruff_format_and_mypy() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]

    assert "ruff check ." in recipe
    assert "ruff format --check ." in recipe
    assert "mypy" in recipe


def test_the_postgresql_pass_repeats_the_worker_tests_but_not_the_other_slow_ones() -> (
    None
):
    import re
    import subprocess
    import sys

    script = (ROOT / ".ci" / "run").read_text()
    marks = re.search(r"-m '([^']+)'", script.split("PostgreSQL ==", 1)[1])
    assert marks, "the PostgreSQL pass selects tests by marker"
    files = [
        "tests/quantjobs/test_job_lifecycle.py",  # a real worker's row locks: repeated
        "tests/quantjobs/test_faults.py",
        "tests/quantjobs/backends/test_families.py",  # llama.cpp only: not repeated
        "tests/frontend/test_pages.py",  # fast database tests: repeated
    ]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", marks.group(1), *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    selected = {line.split("::")[0] for line in out.splitlines() if "::" in line}
    assert selected == set(files) - {"tests/quantjobs/backends/test_families.py"}, out
    # The inner pytest inherited this session's QUANTPLAN_TEST_RUN: it must leave this
    # session's folder (and its SQLite file) alone when it ends.
    import os

    assert (ROOT / "var" / "test" / os.environ["QUANTPLAN_TEST_RUN"]).is_dir()
