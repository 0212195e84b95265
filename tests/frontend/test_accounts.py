"""Sign-up, login, logout, and API tokens (page and API)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_sign_up_creates_the_account_and_signs_in(client: Any) -> None:
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "",
            "password1": "a long secret 8!",
            "password2": "a long secret 8!",
        },
    )
    assert response.status_code == 302
    assert client.get("/jobs/").status_code == 200


def test_sign_up_errors_stay_next_to_the_field_and_keep_input(client: Any) -> None:
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "not-an-email",
            "password1": "x",
            "password2": "y",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="carol"' in html
    assert "Enter a valid email address." in html
    assert "Traceback" not in html


def test_login_and_logout(client: Any, user: Any) -> None:
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get("/artifacts/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/artifacts/").status_code == 302


def test_pages_redirect_anonymous_users_to_login(client: Any) -> None:
    # The planner ("/") is public; what keeps a user's things needs an account.
    for path in ("/jobs/", "/artifacts/", "/tokens/", "/plans/", "/jobs/new/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/")


def test_the_api_needs_a_token_or_a_session(db: Any) -> None:
    response = APIClient().get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_token_page_creates_shows_once_and_revokes(client: Any, user: Any) -> None:
    client.force_login(user)
    response = client.post("/tokens/", {"name": "ci"})
    html = response.content.decode()
    raw = html.split('id="new-token">')[1].split("<")[0]
    assert raw.startswith("qp_")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/jobs/").status_code == 200
    assert raw not in client.get("/tokens/").content.decode()

    from frontend.models import ApiToken

    token = ApiToken.objects.get(user=user)
    assert token.token_hash != raw
    client.post(f"/tokens/{token.pk}/revoke/")
    assert api.get("/api/v1/jobs/").status_code == 401


def _session_api(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_token_api_creates_lists_and_revokes(api: Any, user: Any) -> None:
    # Creating needs a signed-in session (a token cannot make tokens).
    created = _session_api(user).post(
        "/api/v1/tokens/", {"name": "laptop"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["token"].startswith("qp_")
    listed = api.get("/api/v1/tokens/").json()["results"]
    assert {t["name"] for t in listed} == {"tests", "laptop"}
    assert all("token" not in t for t in listed)
    assert api.delete(f"/api/v1/tokens/{created.json()['id']}/").status_code == 204


def test_another_users_token_cannot_be_revoked(user: Any, other_api: Any) -> None:
    created = (
        _session_api(user)
        .post("/api/v1/tokens/", {"name": "mine"}, format="json")
        .json()
    )
    assert other_api.delete(f"/api/v1/tokens/{created['id']}/").status_code == 404


def test_a_malformed_authorization_header_is_a_401_with_a_message(db: Any) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer")
    response = api.get("/api/v1/jobs/")
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]
