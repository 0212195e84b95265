"""Load on a real gunicorn, and the per-user job quota.

gunicorn serves ``config.wsgi`` on 127.0.0.1 against the test database (2 workers,
4 threads each); 50 client threads send 1,000 requests with a real token, half of
them plans (``POST /api/v1/plans/``, computed, not saved) and half job lists
(``GET /api/v1/jobs/``). Every request must be answered, none with a 5xx; the
throughput and the 99th percentile latency go to docs/reliability.md.

The quota: past ``QUANTPLAN_MAX_ACTIVE_JOBS`` active jobs, a submission is a 429
that says what to do, in-process and against gunicorn with concurrent submissions
(a check-then-insert race would let a burst through).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import reliability

SECTION = "Load test"
QUOTA = "Quota"
ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 1_000
CLIENTS = 50
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
PLAN_BODY = {"model": "llama-3.1-8b", "gpu": "l4", "context": 8192, "concurrency": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A gunicorn serving the project on loopback."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")[-4000:]


@pytest.fixture
def gunicorn(transactional_db: Any, redis_url: str, tmp_path: Path) -> Iterator[Server]:
    """gunicorn on a free loopback port, with this test's database and Redis."""
    from tests.conftest import database_url

    port = _free_port()
    log_path = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(GUNICORN_WORKERS),
                "--threads",
                str(GUNICORN_THREADS),
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
            cwd=str(ROOT),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    try:  # whatever happens from here, the server is stopped
        _wait_until_it_answers(server)
        yield server
    finally:
        _stop(proc)


def _wait_until_it_answers(server: Server, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{server.log()}")
        try:
            requests.get(f"{server.url}/api/v1/catalog/gpus/", timeout=5)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"gunicorn did not answer in {timeout_s} s:\n{server.log()}"
                )
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to gunicorn's process group (master, workers); SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def token(transactional_db: Any, user: Any) -> str:
    from frontend.services import api_token_create

    _token, raw = api_token_create(user=user, name="load test")
    return raw


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def _hammer(
    calls: list[Callable[[requests.Session], requests.Response]], clients: int
) -> tuple[list[tuple[int, float]], list[str], float]:
    """Run the calls from ``clients`` threads, a session each: (status, s), errors."""
    local = threading.local()
    results: list[tuple[int, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(call: Callable[[requests.Session], requests.Response]) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            response = call(session)
        except requests.RequestException as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        elapsed = time.perf_counter() - started
        with lock:
            results.append((response.status_code, elapsed))

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, calls))
    return results, errors, time.perf_counter() - began


@pytest.mark.slow
def test_a_thousand_requests_from_fifty_clients_are_all_answered_without_5xx(
    gunicorn: Server, token: str, user: Any
) -> None:
    from quantjobs.models import Job

    for i in range(20):  # a job list with something in it
        Job.objects.create(
            user=user,
            method="gguf",
            formats=["gguf-Q4_K_M"],
            source_kind="sample",
            source_ref="smollm2-135m",
            name=f"job {i}",
            status=Job.Status.SUCCEEDED,
        )
    headers = {"Authorization": f"Bearer {token}"}
    plans = f"{gunicorn.url}/api/v1/plans/"
    jobs = f"{gunicorn.url}/api/v1/jobs/"

    def plan(session: requests.Session) -> requests.Response:
        return session.post(plans, json=PLAN_BODY, headers=headers, timeout=60)

    def job_list(session: requests.Session) -> requests.Response:
        return session.get(jobs, headers=headers, timeout=60)

    calls = [plan if i % 2 == 0 else job_list for i in range(REQUESTS)]
    load_before = os.getloadavg()[0]

    results, errors, wall_s = _hammer(calls, CLIENTS)

    statuses = Counter(status for status, _ in results)
    latencies = [seconds for _, seconds in results]
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    reliability.record(SECTION, "requests sent", REQUESTS)
    reliability.record(SECTION, "concurrent clients", CLIENTS)
    reliability.record(SECTION, "requests answered", len(results))
    reliability.record(SECTION, "connection errors", len(errors))
    reliability.record(SECTION, "5xx responses", server_errors)
    reliability.record(
        SECTION,
        "non-2xx responses",
        sum(n for status, n in statuses.items() if not 200 <= status < 300),
    )
    reliability.record(SECTION, "requests/s", round(len(results) / wall_s, 1))
    reliability.record(
        SECTION, "p50 latency (ms)", round(_percentile(latencies, 50) * 1000)
    )
    reliability.record(
        SECTION, "p99 latency (ms)", round(_percentile(latencies, 99) * 1000)
    )
    reliability.record(SECTION, "max latency (ms)", round(max(latencies) * 1000))
    reliability.record(SECTION, "wall time (s)", round(wall_s, 1))
    reliability.record(SECTION, "machine load average before (1 min)", load_before)
    reliability.note(
        SECTION,
        f"gunicorn {GUNICORN_WORKERS} workers × {GUNICORN_THREADS} threads on "
        "127.0.0.1, "
        f"the test database ({_engine()}), {os.cpu_count()} CPU cores shared with the "
        f"client threads; half POST /api/v1/plans/ ({PLAN_BODY['model']} on "
        f"{PLAN_BODY['gpu']}, 11 formats, not saved), half GET /api/v1/jobs/ "
        "(20 jobs), "
        "each with a real API token. Other work on the machine moves these figures.",
    )
    assert not errors, errors[:5]
    assert len(results) == REQUESTS
    assert server_errors == 0, (statuses, gunicorn.log())
    assert set(statuses) == {200}, statuses


def _engine() -> str:
    from django.db import connection

    return connection.vendor


def _job_body() -> dict[str, Any]:
    return {"method": "selftest", "formats": ["selftest"]}


@pytest.mark.django_db
def test_a_job_past_the_active_job_quota_is_429_with_what_to_do(
    api: Any, user: Any, redis_url: str, settings: Any
) -> None:
    from quantjobs.models import Job

    limit = settings.QUANTPLAN_MAX_ACTIVE_JOBS
    created = [
        api.post("/api/v1/jobs/", _job_body(), format="json") for _ in range(limit)
    ]
    assert [r.status_code for r in created] == [201] * limit

    refused = api.post("/api/v1/jobs/", _job_body(), format="json")
    rerun = api.post(f"/api/v1/jobs/{created[0].json()['id']}/rerun/")

    for response in (refused, rerun):
        assert response.status_code == 429, response.content
        body = response.json()
        assert body["code"] == "throttled"
        assert f"the limit is {limit}" in body["detail"]
        assert "cancel" in body["detail"]
    assert Job.objects.filter(user=user).count() == limit
    # Cancelling one frees a place.
    assert (
        api.post(f"/api/v1/jobs/{created[0].json()['id']}/cancel/").status_code == 200
    )
    assert api.post("/api/v1/jobs/", _job_body(), format="json").status_code == 201
    reliability.record(QUOTA, "active-job limit (QUANTPLAN_MAX_ACTIVE_JOBS)", limit)
    reliability.add(QUOTA, "submissions past the limit refused with 429", 2)


@pytest.mark.slow
def test_a_burst_of_concurrent_submissions_cannot_pass_the_quota(
    gunicorn: Server, token: str, user: Any
) -> None:
    """Twenty submissions at once: exactly the limit is accepted, the rest are 429."""
    from django.conf import settings

    from quantjobs.models import Job

    limit = settings.QUANTPLAN_MAX_ACTIVE_JOBS
    burst = 20
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{gunicorn.url}/api/v1/jobs/"

    def submit(session: requests.Session) -> requests.Response:
        return session.post(url, json=_job_body(), headers=headers, timeout=60)

    results, errors, _wall = _hammer([submit] * burst, burst)

    statuses = Counter(status for status, _ in results)
    assert not errors, errors[:5]
    active = Job.objects.filter(user=user, status__in=["QUEUED", "RUNNING"]).count()
    reliability.record(QUOTA, "concurrent burst: submissions", burst)
    reliability.record(QUOTA, "concurrent burst: accepted (201)", statuses.get(201, 0))
    reliability.record(QUOTA, "concurrent burst: refused (429)", statuses.get(429, 0))
    assert statuses == {201: limit, 429: burst - limit}, (statuses, gunicorn.log())
    assert active == limit
    reliability.add(QUOTA, "submissions past the limit refused with 429", burst - limit)
