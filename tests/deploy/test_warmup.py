"""``config.warmup``: what a fresh gunicorn worker does before its first request."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_warm_reads_the_catalogs_imports_the_views_and_freezes_the_heap() -> None:
    # In a fresh interpreter, as a new gunicorn worker is: this process has
    # imported and cached everything already.
    probe = (
        "import sys, gc, django; django.setup()\n"
        "from config.warmup import warm\n"
        "from planner.engine import catalog\n"
        "assert 'planner.api.views' not in sys.modules\n"
        "seconds = warm()\n"
        "assert 'planner.api.views' in sys.modules, 'the URLconf was not resolved'\n"
        "assert 'quantjobs.sources' in sys.modules\n"
        "assert catalog._models.cache_info().currsize == 1\n"
        "assert catalog._gpus.cache_info().currsize == 1\n"
        "print(gc.get_freeze_count(), seconds)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frozen, _seconds = done.stdout.split()
    assert int(frozen) > 50_000, "the loaded objects are kept out of the collector"
