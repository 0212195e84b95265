"""The Django admin: staff can list and search jobs, artifacts, uploads, plans and
tokens (read-only, no add); a signed-in user who is not staff cannot."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests import reliability

SECTION = "Admin"
pytestmark = pytest.mark.django_db

PAGES = {
    "jobs": ("quantjobs", "job"),
    "artifacts": ("quantjobs", "artifact"),
    "results": ("quantjobs", "jobresult"),
    "uploads": ("quantjobs", "modelupload"),
    "plans": ("planner", "plan"),
    "tokens": ("frontend", "apitoken"),
}


@pytest.fixture
def staff_client(django_user_model: Any) -> Client:
    """A staff member who may view these models (not a superuser)."""
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user(
        username="operator", password="x-long-password", is_staff=True
    )
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=[f"view_{model}" for _app, model in PAGES.values()]
            + ["delete_plan", "delete_apitoken"]
        )
    )
    client = Client()
    client.force_login(staff)
    return client


def _search_terms(owned: Any) -> dict[str, str]:
    return {
        "jobs": str(owned.job.pk),
        "artifacts": owned.artifact.sha256,
        "results": str(owned.job.pk),
        "uploads": owned.upload.sha256,
        "plans": "alice's plan",
        "tokens": "alice's laptop",
    }


@pytest.mark.parametrize("name", list(PAGES))
def test_staff_can_list_and_search_each(
    owned: Any, staff_client: Client, name: str
) -> None:
    app, model = PAGES[name]
    base = f"/admin/{app}/{model}/"
    listed = staff_client.get(base)
    found = staff_client.get(base, {"q": _search_terms(owned)[name]})
    missed = staff_client.get(base, {"q": "no-such-thing-anywhere"})

    assert listed.status_code == 200
    assert found.status_code == 200
    assert found.context["cl"].result_count == 1
    assert missed.context["cl"].result_count == 0
    assert staff_client.get(f"{base}add/").status_code == 403
    reliability.add(SECTION, "admin lists searchable by staff")


def test_filters_narrow_the_job_list(owned: Any, staff_client: Client) -> None:
    response = staff_client.get("/admin/quantjobs/job/", {"status__exact": "QUEUED"})

    assert [j.pk for j in response.context["cl"].result_list] == [owned.queued_job.pk]


def test_a_job_is_shown_read_only(owned: Any, staff_client: Client) -> None:
    url = f"/admin/quantjobs/job/{owned.job.pk}/change/"
    shown = staff_client.get(url)
    posted = staff_client.post(url, {"status": "FAILED"})

    assert shown.status_code == 200
    assert 'name="status"' not in shown.content.decode()
    assert posted.status_code == 403
    owned.job.refresh_from_db()
    assert owned.job.status == "SUCCEEDED"


def test_the_token_page_never_shows_the_hash(owned: Any, staff_client: Client) -> None:
    html = staff_client.get(
        f"/admin/frontend/apitoken/{owned.token.pk}/change/"
    ).content.decode()

    assert owned.token.token_hash not in html


@pytest.mark.parametrize("name", list(PAGES))
def test_a_user_who_is_not_staff_cannot(
    owned: Any, page_client: Client, name: str
) -> None:
    app, model = PAGES[name]
    response = page_client.get(f"/admin/{app}/{model}/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    reliability.add(SECTION, "admin lists refused to non-staff")
