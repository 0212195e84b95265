"""Container health checks: ``python deploy/healthcheck.py web|worker``; exit 0 if healthy.

web: GET /healthz on this container with an allowed Host header. The web process is
healthy when it answers with its JSON report, 200 or 503: a 503 means Redis or the
workers are down, and restarting the web would not fix that (the report says which).
Only no answer, or a 500, restarts it.

worker: a Celery ping to this worker (``CELERY_WORKER_NAME``@this host) over the
broker; the worker's main process answers even while a long job runs in its pool.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request


def web() -> int:
    """0 if gunicorn answers /healthz with its JSON report."""
    port = os.environ.get("PORT", "8000")
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    host = next((h.lstrip(".") for h in hosts if h and h != "*"), "localhost")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz",
        # /healthz is exempt from the HTTPS redirect; the Host must be an allowed one.
        headers={"Host": host, "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        print(f"web: no answer on port {port}: {exc}")
        return 1
    try:
        report = json.loads(body)
    except ValueError:
        print(f"web: /healthz answered {status} without its JSON report")
        return 1
    print(f"web: {status} {report.get('status')}")
    return 0 if status in (200, 503) else 1


def worker() -> int:
    """0 if this worker answers a ping through the broker within 10 s."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from config.celery import app

    name = f"{os.environ.get('CELERY_WORKER_NAME', 'worker')}@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[name], timeout=10.0) or []
    except (
        Exception
    ) as exc:  # the broker is down: report it, let the orchestrator decide
        print(f"worker: ping failed: {type(exc).__name__}: {exc}")
        return 1
    ok = any(name in reply for reply in replies)
    print(f"worker: {name} {'answered' if ok else 'did not answer'}")
    return 0 if ok else 1


if __name__ == "__main__":
    checks = {"web": web, "worker": worker}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        sys.exit("usage: healthcheck.py web|worker")
    sys.exit(checks[sys.argv[1]]())
