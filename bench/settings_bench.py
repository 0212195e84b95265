"""Settings for the benchmarks: the test settings, a bench URLconf, private folders.

Selected with ``DJANGO_SETTINGS_MODULE=bench.settings_bench`` by the web and
end-to-end benchmarks only. Everything a run writes lives under
``QUANTPLAN_BENCH_DIR`` (a throwaway folder under var/bench/), with its own
SQLite database given by ``DATABASE_URL``.
"""

from __future__ import annotations

import os
from pathlib import Path

from config.settings.test import *  # noqa: F403
from config.settings.test import VAR_DIR

BENCH_DIR = Path(os.environ.get("QUANTPLAN_BENCH_DIR", str(VAR_DIR / "bench" / "run")))
ROOT_URLCONF = "bench.urls_bench"
MEDIA_ROOT = BENCH_DIR / "media"
QUANTPLAN_ARTIFACT_ROOT = MEDIA_ROOT / "artifacts"
QUANTPLAN_WORK_ROOT = MEDIA_ROOT / "work"
QUANTPLAN_UPLOAD_ROOT = MEDIA_ROOT / "uploads"
QUANTPLAN_LOCAL_MODEL_DIRS = [str(BENCH_DIR / "models")]
# As config/settings/production.py: keep database connections between requests.
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
