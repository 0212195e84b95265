"""planner.engine stays plain Python: importable without Django or any dependency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_imports_nothing_from_django() -> None:
    code = (
        "import planner.engine, sys; "
        "bad = [m for m in sys.modules if m.startswith('django')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_engine_imports_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import planner.engine; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "extra = new - set(sys.stdlib_module_names) - {'planner'}; "
        "assert not extra, extra"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_hub_module_imports_huggingface_hub_lazily() -> None:
    code = "import planner.hub, sys; assert 'huggingface_hub' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
