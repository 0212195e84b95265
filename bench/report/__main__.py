"""``python -m bench.report``: re-render docs/benchmarks.md from saved results."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench._common import ROOT  # noqa: E402
from bench.report import render  # noqa: E402

print(render(ROOT / "docs" / "benchmarks.md"))
