"""Production settings pass Django's deploy checks; gunicorn and health checks are sound."""

from __future__ import annotations
import __future__

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "a-50-plus-character-secret-for-tests-only-" + "x9Q!" * 6,
    "DJANGO_ALLOWED_HOSTS": "quantplan.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_deploy_reports_no_issues() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL"]
)
def test_production_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    result = _manage("check", env=env)

    assert result.returncode != 0
    assert missing in result.stderr


def test_the_gunicorn_config_uses_only_gunicorn_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gunicorn.config import KNOWN_SETTINGS

    monkeypatch.setenv("PORT", "8123")
    conf = _module(ROOT / "deploy" / "gunicorn.conf.py", "gunicorn_conf")
    names = {
        name
        for name, value in vars(conf).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType | __future__._Feature)
    }
    known = {setting.name for setting in KNOWN_SETTINGS}

    assert names <= known, names - known  # gunicorn silently ignores a misspelt setting
    assert conf.bind == "0.0.0.0:8123" and conf.worker_class == "gthread"


@pytest.mark.django_db(transaction=True)
def test_the_web_health_check_counts_a_degraded_report_as_alive(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker is down in tests, so /healthz answers 503 with its JSON report.
    check = _module(ROOT / "deploy" / "healthcheck.py", "healthcheck")
    monkeypatch.setenv("PORT", live_server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", ".localhost,localhost")

    assert check.web() == 0


def test_the_web_health_check_fails_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = _module(ROOT / "deploy" / "healthcheck.py", "healthcheck")
    monkeypatch.setenv("PORT", str(port))

    assert check.web() == 1
