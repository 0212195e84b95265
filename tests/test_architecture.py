"""Which part may import which (docs/architecture.md), checked on every import,
at the top of a module or inside a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


# The frontend's own API (API tokens) and its DRF authentication are API modules.
_FRONTEND_API = {"api.py", "api_urls.py", "auth.py"}


@pytest.mark.parametrize(
    "path",
    [p for p in _modules("frontend") if p.name not in _FRONTEND_API],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pages_call_services_and_selectors_never_the_api_layer(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if ".api." in f".{name}." or name.startswith("rest_framework")
    )
    assert not bad, f"{path.relative_to(ROOT)} imports the API layer: {bad}"


@pytest.mark.parametrize("package", ["planner", "quantjobs"])
def test_the_domain_apps_never_import_the_pages(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(
            n for n in _imports(path) if n == "frontend" or n.startswith("frontend.")
        )
        for path in _modules(package)
    }
    assert not {k: v for k, v in bad.items() if v}


def _imports_by_function(path: Path) -> set[tuple[str, str]]:
    """(the function an import sits in, or "" at module level; the module imported)."""
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, where or child.name)
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                found.add((where, child.module))
            elif isinstance(child, ast.Import):
                found.update((where, a.name) for a in child.names)
            visit(child, where)

    visit(ast.parse(path.read_text()), "")
    return found


def test_the_planner_never_imports_quantjobs() -> None:
    found = {
        (str(path.relative_to(ROOT)), where or "<module>", module)
        for path in _modules("planner")
        for where, module in _imports_by_function(path)
        if module == "quantjobs" or module.startswith("quantjobs.")
    }
    assert not found, (
        "the planner imports quantjobs; read uploads and local files through "
        "planner/model_sources.py, measurements through planner/measurements.py, "
        f"and job reads from quantjobs' own selectors: {sorted(found)}"
    )


def test_a_rule_break_is_seen(tmp_path: Path) -> None:
    page = tmp_path / "views.py"
    page.write_text(
        "def view():\n    from quantjobs.api.serializers import JobOutput\n"
    )
    assert "quantjobs.api.serializers" in _imports(page)
    assert ("view", "quantjobs.api.serializers") in _imports_by_function(page)


# What the planner must not reach into quantjobs for: measurements and the
# ledger come through planner.measurements, where quantjobs registers itself.
_MEASUREMENT_READS = (
    "quantjobs.calibration",
    "quantjobs.models.CalibrationRecord",
    "quantjobs.models.JobResult",
    "quantjobs.selectors.measured_quality_for_model",
    "quantjobs.selectors.format_measurements_for_model",
    "quantjobs.projections",
)


@pytest.mark.parametrize(
    "module", ["planner/services.py", "planner/measurements.py", "planner/selectors.py"]
)
def test_planner_services_do_not_import_quantjobs_for_measurements(
    module: str,
) -> None:
    bad = sorted(
        name
        for name in _imports(ROOT / module)
        if any(name == r or name.startswith(f"{r}.") for r in _MEASUREMENT_READS)
    )
    assert not bad, f"{module} reads measurements from quantjobs directly: {bad}"


def test_the_measurement_registry_imports_nothing_from_quantjobs() -> None:
    names = _imports(ROOT / "planner" / "measurements.py")
    assert not [n for n in names if n == "quantjobs" or n.startswith("quantjobs.")]


# A module past this many lines becomes a package (docs/STYLE: "a package instead of
# a module once a module passes ~500 lines"), or says on one of its first lines why
# it stays whole.
MAX_MODULE_LINES = 500
WHOLE_MARKER = "# Kept whole:"
_SIZED_PACKAGES = ("planner", "quantjobs", "frontend", "config", "bench")


def _unexplained_large_modules(root: Path) -> list[str]:
    found = []
    for package in _SIZED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) <= MAX_MODULE_LINES:
                continue
            head = [line.strip() for line in lines[:3]]
            reason = next((h for h in head if h.startswith(WHOLE_MARKER)), "")
            if len(reason) <= len(WHOLE_MARKER) + 10:  # a marker needs a reason
                found.append(f"{path.relative_to(root)} ({len(lines)} lines)")
    return found


def test_no_module_over_500_lines_lacks_a_stated_reason() -> None:
    assert not _unexplained_large_modules(ROOT), (
        "split these modules, or state on one of their first three lines why they "
        f"stay whole ('{WHOLE_MARKER} ...')"
    )


def test_a_large_module_without_a_reason_is_seen(tmp_path: Path) -> None:
    package = tmp_path / "planner"
    package.mkdir()
    body = "x = 1\n" * (MAX_MODULE_LINES + 1)
    (package / "big.py").write_text(body)
    (package / "explained.py").write_text(
        f"{WHOLE_MARKER} one table that reads best in one place.\n" + body
    )
    (package / "bare_marker.py").write_text(f"{WHOLE_MARKER}\n" + body)
    (package / "small.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    found = _unexplained_large_modules(tmp_path)
    assert found == [
        f"planner/bare_marker.py ({MAX_MODULE_LINES + 2} lines)",
        f"planner/big.py ({MAX_MODULE_LINES + 1} lines)",
    ]
