"""Token authentication writes ``last_used_at`` at most once a minute, not per request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import reliability

SECTION = "Token authentication under load"

pytestmark = pytest.mark.django_db


def _token_writes(queries: CaptureQueriesContext) -> int:
    return sum(
        1
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("UPDATE")
        and "frontend_apitoken" in q["sql"]
    )


def test_fifty_requests_write_last_used_once(api: Any, user: Any) -> None:
    from frontend.models import ApiToken

    with CaptureQueriesContext(connection) as queries:
        statuses = {api.get("/api/v1/plans/").status_code for _ in range(50)}

    assert statuses == {200}
    assert _token_writes(queries) == 1
    token = ApiToken.objects.get(user=user, name="tests")
    assert token.last_used_at is not None
    reliability.record(SECTION, "token writes for 50 requests in a minute", 1)
    reliability.note(
        SECTION,
        "UPDATEs of frontend_apitoken counted over 50 token-authenticated requests "
        "in-process; last_used_at is written when it is over 60 s old (a conditional "
        "update), where every request used to write it. Throughput under 50 clients: "
        "bench/web_load.py.",
    )


def test_last_used_is_written_again_once_a_minute_old(api: Any, user: Any) -> None:
    from django.utils import timezone

    from frontend.models import ApiToken

    api.get("/api/v1/plans/")
    old = timezone.now() - timedelta(seconds=61)
    ApiToken.objects.filter(user=user).update(last_used_at=old)

    with CaptureQueriesContext(connection) as queries:
        api.get("/api/v1/plans/")
        api.get("/api/v1/plans/")

    assert _token_writes(queries) == 1
    assert ApiToken.objects.get(user=user, name="tests").last_used_at > old
