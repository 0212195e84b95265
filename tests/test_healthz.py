"""``/healthz`` reports database, broker and workers; 200 only when all are up."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    """Details are for staff: probes and strangers get the status alone."""
    staff = django_user_model.objects.create_user(
        username="operator", password="x-long-password", is_staff=True
    )
    client.force_login(staff)
    return client


@pytest.mark.django_db
def test_anonymous_callers_get_the_status_and_code_only(client: Any) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}


@pytest.mark.django_db
def test_it_reports_503_when_the_broker_is_down(staff_client: Any) -> None:
    client = staff_client
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
    staff_client: Any, start_worker: Any, redis_url: str
) -> None:
    from tests.helpers import wait_for

    client = staff_client
    start_worker("cpu,gpu")

    def healthy() -> Any:
        response = client.get("/healthz")
        return response if response.status_code == 200 else None

    response = wait_for(healthy, timeout_s=60)
    body = response.json()
    assert body["status"] == "ok"
    assert body["broker"]["ok"] is True
    assert sorted(body["workers"]["queues"]) == ["cpu", "gpu"]
