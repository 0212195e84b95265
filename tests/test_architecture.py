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


def test_a_rule_break_is_seen(tmp_path: Path) -> None:
    page = tmp_path / "views.py"
    page.write_text(
        "def view():\n    from quantjobs.api.serializers import JobOutput\n"
    )
    assert "quantjobs.api.serializers" in _imports(page)


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
