"""``/healthz`` reports database, broker and workers; 200 only when all are up."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.django_db
def test_it_reports_503_when_the_broker_is_down(client: Any) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is False
    assert body["broker"]["detail"]
    assert body["workers"]["ok"] is False


@pytest.mark.slow
@pytest.mark.worker
def test_it_reports_200_with_a_running_worker(
    client: Any, start_worker: Any, redis_url: str
) -> None:
    from tests.helpers import wait_for

    start_worker("cpu,gpu")

    def healthy() -> Any:
        response = client.get("/healthz")
        return response if response.status_code == 200 else None

    response = wait_for(healthy, timeout_s=60)
    body = response.json()
    assert body["status"] == "ok"
    assert body["broker"]["ok"] is True
    assert sorted(body["workers"]["queues"]) == ["cpu", "gpu"]
