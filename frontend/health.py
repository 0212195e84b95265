"""``/healthz``: database, broker and workers, as JSON; 200 when all are up, else 503.

Probes (compose, Kubernetes, deploy/healthcheck.py) read the status code and
``status``; the details (engine, hostnames, queues, error texts) are internal and
shown to staff only.
"""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from quantjobs.broker import broker_ping
from quantjobs.selectors import workers_recent


def _database() -> dict[str, object]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "engine": connection.vendor}


def _workers() -> dict[str, object]:
    try:
        workers = list(workers_recent(within_s=60))
    except Exception as exc:
        return {
            "ok": False,
            "detail": f"{type(exc).__name__}: {exc}"[:300],
            "workers": [],
        }
    queues = sorted({q for w in workers for q in (w.queues or [])})
    return {
        "ok": bool(workers),
        "count": len(workers),
        "queues": queues,
        "workers": [{"hostname": w.hostname, "queues": w.queues} for w in workers],
        **({} if workers else {"detail": "no worker has reported in the last 60 s"}),
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Report each dependency; any one down makes the whole answer 503."""
    database = _database()
    broker_ok, broker_detail = broker_ping(timeout_s=1.5)
    broker = {"ok": broker_ok, **({} if broker_ok else {"detail": broker_detail[:300]})}
    workers = _workers() if database["ok"] else {"ok": False, "detail": "database down"}
    ok = bool(database["ok"] and broker["ok"] and workers["ok"])
    body: dict[str, object] = {"status": "ok" if ok else "degraded"}
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        body.update(database=database, broker=broker, workers=workers)
    return JsonResponse(body, status=200 if ok else 503)
