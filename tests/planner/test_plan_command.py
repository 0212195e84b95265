"""``manage.py plan`` on a checkout whose database has never been migrated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "plan", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_it_plans_without_a_database_and_says_every_number_is_estimated(
    tmp_path: Path,
) -> None:
    done = _plan(tmp_path, "--model", "llama-3-8b", "--gpu", "l4", "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "no measurements were read" in done.stderr
    assert "manage.py migrate" in done.stderr
    rows = json.loads(done.stdout)
    assert rows
    assert all(s.startswith("estimated") for r in rows for s in r["sources"].values())


def test_a_worker_gpu_without_a_database_is_a_clear_error(tmp_path: Path) -> None:
    done = _plan(tmp_path, "--model", "llama-3-8b", "--gpu", "worker:w1")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "manage.py migrate" in done.stderr
