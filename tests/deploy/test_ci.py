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
