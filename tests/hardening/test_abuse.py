"""Abuse: lockouts, rate limits, token rules, the server's queue, per-user limits, CSP.

Each refusal says what happened and what to do: a form error on pages (status 429),
JSON with ``Retry-After`` on the API. Lockouts are django-axes' (database-backed),
rate limits DRF's throttles over the cache, shared by the API and the pages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests import reliability

SECTION = "Abuse"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_api(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="operator", password=PASSWORD, is_staff=True, is_superuser=True
    )


# --- login lockouts ------------------------------------------------------------------


def test_after_the_failure_limit_the_right_password_is_refused_with_a_form_error(
    user: Any, settings: Any
) -> None:
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    wrong = [
        client.post("/accounts/login/", {"username": "alice", "password": "nope"})
        for _ in range(limit)
    ]
    right = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert all(r.status_code in (200, 429) for r in wrong)
    assert right.status_code == 429
    html = right.content.decode()
    assert "signing in is locked for 15 minutes, even with the right password" in html
    assert 'id="login-form"' in html  # the form, with the error above it
    assert right["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session
    reliability.record(SECTION, "wrong passwords before a lockout", limit)
    reliability.record(SECTION, "right password during the lockout", "429, form error")


def test_a_lockout_ends_after_the_cool_off(user: Any, settings: Any) -> None:
    from axes.models import AccessAttempt
    from django.utils import timezone

    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 302


def test_the_admin_login_locks_out_too(staff: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/?next=/admin/", {"username": "operator", "password": "no"}
        )
    right = client.post(
        "/admin/login/?next=/admin/", {"username": "operator", "password": PASSWORD}
    )

    assert right.status_code == 429
    assert "signing in is locked" in right.content.decode()
    assert client.get("/admin/").status_code == 302  # still not signed in
    reliability.record(SECTION, "admin login lockout", "429, form error")


# --- rate limits ---------------------------------------------------------------------


def test_sign_ups_past_the_rate_get_a_form_error(settings: Any) -> None:
    settings.QUANTPLAN_RATES = {**settings.QUANTPLAN_RATES, "signup": "2/hour"}

    def sign_up(name: str) -> Any:
        return Client().post(
            "/accounts/signup/",
            {"username": name, "password1": "a long secret 8!", "password2": "a long secret 8!"},
        )  # fmt: skip

    statuses = [sign_up(f"user{i}").status_code for i in range(3)]

    assert statuses[:2] == [302, 302]
    assert statuses[2] == 429
    html = sign_up("user9").content.decode()
    assert "Too many sign-ups from you; try again in" in html
    assert 'value="user9"' in html  # what was typed stays
    reliability.record(SECTION, "sign-ups past the rate", "429, form error")


def test_job_creation_past_the_rate_is_429_with_retry_after(
    api: Any, settings: Any, redis_url: str
) -> None:
    settings.QUANTPLAN_RATES = {**settings.QUANTPLAN_RATES, "job-create": "2/hour"}
    body = {"method": "selftest", "formats": ["selftest"]}
    responses = [api.post("/api/v1/jobs/", body, format="json") for _ in range(3)]

    assert [r.status_code for r in responses] == [201, 201, 429]
    refused = responses[2]
    assert refused.json()["code"] == "throttled"
    assert "limit 2/hour" in refused.json()["detail"]
    assert 3000 < int(refused["Retry-After"]) <= 3600
    # Reading is not counted.
    assert api.get("/api/v1/jobs/").status_code == 200
    reliability.record(SECTION, "job creation past the rate (API)", "429 + Retry-After")


def test_job_creation_on_the_page_shares_the_count_and_shows_a_form_error(
    api: Any, user: Any, settings: Any, redis_url: str
) -> None:
    settings.QUANTPLAN_RATES = {**settings.QUANTPLAN_RATES, "job-create": "1/hour"}
    assert (
        api.post(
            "/api/v1/jobs/",
            {"method": "selftest", "formats": ["selftest"]},
            format="json",
        ).status_code
        == 201
    )
    page = Client()
    page.force_login(user)

    response = page.post(
        "/jobs/new/",
        {"method": "selftest", "formats": "selftest", "source_kind": "sample"},
    )

    assert response.status_code == 200
    assert "Too many new jobs from you; try again in" in response.content.decode()
    reliability.record(SECTION, "job creation past the rate (page)", "form error")


def test_token_creation_past_the_rate_is_429_on_api_and_page(
    session_api: Any, user: Any, settings: Any
) -> None:
    settings.QUANTPLAN_RATES = {**settings.QUANTPLAN_RATES, "token-create": "2/hour"}
    api_statuses = [
        session_api.post("/api/v1/tokens/", {"name": f"t{i}"}, format="json")
        for i in range(3)
    ]
    page = Client()
    page.force_login(user)
    on_page = page.post("/tokens/", {"name": "one more"})

    assert [r.status_code for r in api_statuses] == [201, 201, 429]
    assert api_statuses[2].has_header("Retry-After")
    assert on_page.status_code == 429
    assert "Too many new tokens from you" in on_page.content.decode()
    reliability.record(SECTION, "token creation past the rate", "429 (API and page)")


# --- tokens --------------------------------------------------------------------------


def test_a_token_cannot_create_tokens(api: Any, user: Any) -> None:
    from frontend.models import ApiToken

    before = ApiToken.objects.filter(user=user).count()
    response = api.post("/api/v1/tokens/", {"name": "child"}, format="json")

    assert response.status_code == 403
    assert "A token cannot create tokens" in response.json()["detail"]
    assert ApiToken.objects.filter(user=user).count() == before
    reliability.record(SECTION, "token creating a token", "403")


def test_an_expired_token_is_a_401_that_says_so(session_api: Any) -> None:
    from django.utils import timezone

    from frontend.models import ApiToken

    soon = timezone.now() + timedelta(hours=1)
    created = session_api.post(
        "/api/v1/tokens/", {"name": "ci", "expires_at": soon.isoformat()}, format="json"
    ).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert client.get("/api/v1/jobs/").status_code == 200

    ApiToken.objects.filter(pk=created["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get("/api/v1/jobs/")

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    reliability.record(SECTION, "expired token", "401")


def test_a_token_expiring_in_the_past_is_a_400(session_api: Any) -> None:
    response = session_api.post(
        "/api/v1/tokens/",
        {"name": "x", "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )

    assert response.status_code == 400
    assert "in the past" in response.json()["expires_at"][0]


def test_the_tokens_page_creates_a_token_with_an_expiry(user: Any) -> None:
    from frontend.models import ApiToken

    page = Client()
    page.force_login(user)
    response = page.post("/tokens/", {"name": "laptop", "expires_in_days": "7"})

    assert response.status_code == 200
    token = ApiToken.objects.get(user=user, name="laptop")
    assert token.expires_at is not None
    assert (
        timedelta(days=6.9) < token.expires_at - token.created_at < timedelta(days=7.1)
    )


# --- queues and per-user limits --------------------------------------------------------


def test_the_server_alone_decides_the_queue(api: Any, redis_url: str) -> None:
    response = api.post(
        "/api/v1/jobs/",
        {"method": "selftest", "formats": ["selftest"], "queue": "gpu"},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["queue"] == "cpu"
    reliability.record(SECTION, "client-sent queue", "ignored (method decides)")


def test_saved_plans_past_the_limit_are_refused_with_the_limit(
    api: Any, user: Any, settings: Any
) -> None:
    from planner.models import Plan

    settings.QUANTPLAN_MAX_SAVED_PLANS = 2
    body = {"model": "llama-3.1-8b", "gpu": "l4", "formats": ["fp16"], "save": True}
    statuses = [
        api.post("/api/v1/plans/", body, format="json").status_code for _ in range(2)
    ]
    refused = api.post("/api/v1/plans/", body, format="json")
    page = Client()
    page.force_login(user)
    from tests.frontend.test_pages import PLAN_FORM

    on_page = page.post("/", {**PLAN_FORM, "action": "save"})

    assert statuses == [201, 201]
    assert refused.status_code == 429
    assert "the limit is 2" in refused.json()["detail"]
    assert "the limit is 2" in on_page.content.decode()
    assert Plan.objects.filter(user=user).count() == 2
    reliability.record(SECTION, "saved plans past the limit", "429 / form error")


def test_uploads_past_the_limit_are_refused_with_the_limit(
    owned: Any, api: Any, settings: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.QUANTPLAN_MAX_UPLOADS = 1  # owned holds one already
    response = api.post(
        "/api/v1/uploads/",
        {"file": SimpleUploadedFile("m.gguf", b"GGUF" + b"\0" * 64)},
        format="multipart",
    )

    assert response.status_code == 429
    assert "the limit is 1" in response.json()["detail"]
    reliability.record(SECTION, "uploads past the limit", "429")


# --- headers and internals -------------------------------------------------------------


def test_pages_carry_a_content_security_policy_without_unsafe_inline(
    user: Any,
) -> None:
    page = Client()
    page.force_login(user)
    for path in ("/", "/jobs/", "/tokens/", "/api/docs/"):
        policy = page.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
    reliability.record(SECTION, "Content-Security-Policy", "script/style 'self' only")


def test_private_pages_and_api_answers_are_not_cached(user: Any, api: Any) -> None:
    page = Client()
    page.force_login(user)
    for response in (
        page.get("/jobs/"),
        page.get("/tokens/"),
        api.get("/api/v1/jobs/"),
    ):
        cache_control = response["Cache-Control"]
        assert "private" in cache_control
        assert "no-store" in cache_control
    reliability.record(SECTION, "Cache-Control on private answers", "private, no-store")


def test_healthz_details_are_for_staff_and_workers_for_signed_in_users(
    staff: Any,
) -> None:
    anonymous = Client().get("/healthz")
    operator = Client()
    operator.force_login(staff)

    assert set(anonymous.json()) == {"status"}
    assert {"database", "broker", "workers"} <= set(operator.get("/healthz").json())
    assert APIClient().get("/api/v1/workers/").status_code == 401
    reliability.record(SECTION, "/healthz to strangers", "status only")


def test_a_rate_limit_whose_cache_is_down_lets_requests_through(
    session_api: Any, settings: Any
) -> None:
    """Production counts in Redis; Redis down must not turn into 500s (it is logged)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    response = session_api.post("/api/v1/tokens/", {"name": "x"}, format="json")

    assert response.status_code == 201
