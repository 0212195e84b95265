"""Nobody reaches another user's objects: every route with an id, pages and API.

The routes come from walking ``django.urls.get_resolver()``; ``ROUTES`` says which of
alice's objects each one names and which requests must answer 404 to bob. A new
route with an id fails ``test_every_route_with_an_object_id_is_in_the_table`` until
it is added here, so it cannot ship unchecked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests import reliability

pytestmark = pytest.mark.django_db

SECTION = "Other users' objects"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Path parameters that name no object: Django admin's app label and catch-all.
NOT_IDS = frozenset({"app_label", "url", "fmt"})


@dataclass(frozen=True)
class Route:
    """A route with an object id: whose object it names, the requests acting on it."""

    obj: str  # a key of Owned.ids()
    methods: tuple[str, ...]  # each must answer 404 to another user, and change nothing
    owner_get: int | None = None  # what the owner's GET answers (the positive control)


ROUTES: dict[str, Route] = {
    # Pages (session login).
    "plan-detail": Route("plan", ("GET",), owner_get=200),
    "job-detail": Route("job", ("GET",), owner_get=200),
    "job-cancel": Route("queued_job", ("POST",)),
    "job-rerun": Route("job", ("POST",)),
    "artifact-download": Route("artifact", ("GET",), owner_get=200),
    "job-answers": Route("job", ("GET",)),
    "token-revoke": Route("token", ("POST",)),
    "plan-detail-export": Route("plan", ("GET",), owner_get=200),
    "plan-rename": Route("plan", ("POST",)),
    "plan-delete": Route("plan", ("POST",)),
    "comparison-detail": Route("comparison", ("GET",), owner_get=200),
    "comparison-export": Route("comparison", ("GET",), owner_get=200),
    "comparison-rename": Route("comparison", ("POST",)),
    "comparison-delete": Route("comparison", ("POST",)),
    "job-live": Route("job", ("GET",), owner_get=200),
    "job-log": Route("job", ("GET",), owner_get=200),
    "job-rename": Route("job", ("POST",)),
    "job-delete": Route("job", ("POST",)),
    "artifact-rename": Route("artifact", ("POST",)),
    "artifact-delete": Route("artifact", ("POST",)),
    "upload-rename": Route("upload", ("POST",)),
    "upload-delete": Route("upload", ("POST",)),
    "upload-tus-detail": Route(
        "tus_upload", ("GET", "HEAD", "PATCH", "DELETE"), owner_get=200
    ),
    # API (token).
    "api-plan-detail": Route("plan", ("GET", "DELETE"), owner_get=200),
    "api-plan-recipes": Route("plan", ("GET",), owner_get=200),
    "api-plan-recipe-download": Route("plan", ("GET",), owner_get=200),
    "api-job-detail": Route("job", ("GET",), owner_get=200),
    "api-job-result-answers": Route("job", ("GET",)),
    "api-job-cancel": Route("queued_job", ("POST",)),
    "api-job-rerun": Route("job", ("POST",)),
    "api-job-recipes": Route("job", ("GET",), owner_get=200),
    "api-job-recipe-download": Route("job", ("GET",), owner_get=200),
    "api-upload-detail": Route("upload", ("GET", "DELETE"), owner_get=200),
    "api-artifact-download": Route("artifact", ("GET",), owner_get=200),
    "api-token-detail": Route("token", ("DELETE",)),
}
CASES = [(name, method) for name, route in ROUTES.items() for method in route.methods]


@dataclass(frozen=True)
class Found:
    """A route as the resolver knows it."""

    key: str  # its name, or its pattern when it has none
    route: str
    params: frozenset[str]
    callback: Any


def _walk(
    resolver: URLResolver, prefix: str = "", params: frozenset[str] = frozenset()
) -> Iterator[Found]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        names = params | frozenset(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route, names)
        elif isinstance(entry, URLPattern):
            yield Found(entry.name or route, route, names, entry.callback)


def id_routes() -> list[Found]:
    """Every route whose path carries an object id."""
    return [found for found in _walk(get_resolver()) if found.params - NOT_IDS]


def _kwargs(name: str, owned: Any) -> dict[str, Any]:
    route = ROUTES[name]
    kwargs: dict[str, Any] = {"pk": owned.ids()[route.obj]}
    if name.endswith("-export"):
        kwargs["fmt"] = "json"
    if name.endswith("recipe-download"):
        kwargs["recipe_id"] = (
            owned.plan_recipe_id if route.obj == "plan" else owned.job_recipe_id
        )
    if name.endswith("answers"):
        kwargs["fmt"] = "gguf-Q4_K_M"
    return kwargs


def _url(name: str, owned: Any) -> str:
    return reverse(name, kwargs=_kwargs(name, owned))


def _state(owned: Any, user: Any, other_user: Any) -> dict[str, Any]:
    """What a request by someone else must not change."""
    from django.conf import settings

    from frontend.models import ApiToken
    from planner.models import Plan
    from quantjobs.models import Artifact, Job, ModelUpload, TusUpload

    queued = Job.objects.get(pk=owned.queued_job.pk)
    from planner.models import Comparison

    plan = Plan.objects.filter(pk=owned.plan.pk, user=user).first()
    comparison = Comparison.objects.filter(pk=owned.comparison.pk, user=user).first()
    return {
        "plan": (plan.name if plan else None),
        "comparison": (comparison.name if comparison else None),
        "names of alice's jobs and files": sorted(
            [j.name for j in Job.objects.filter(user=user)]
            + [a.filename for a in Artifact.objects.filter(user=user)]
            + [u.filename for u in ModelUpload.objects.filter(user=user)]
        ),
        "jobs of alice": sorted(
            (str(j.pk), j.status, j.cancel_requested)
            for j in Job.objects.filter(user=user)
        ),
        "queued job": (queued.status, queued.cancel_requested),
        "jobs of bob": Job.objects.filter(user=other_user).count(),
        "artifact": Artifact.objects.filter(pk=owned.artifact.pk, user=user).exists(),
        "artifact file": (
            Path(settings.QUANTPLAN_ARTIFACT_ROOT) / owned.artifact.path
        ).is_file(),
        "upload": ModelUpload.objects.filter(pk=owned.upload.pk, user=user).exists(),
        "upload file": owned.upload.abspath.is_file(),
        "token": ApiToken.objects.filter(pk=owned.token.pk, user=user).exists(),
        "resumable upload": list(
            TusUpload.objects.filter(pk=owned.tus_upload.pk, user=user).values_list(
                "offset_bytes", flat=True
            )
        ),
    }


def _request(client: Any, method: str, url: str) -> Any:
    return client.generic(method, url)


def _anonymous(url: str) -> Any:
    if url.startswith("/api/"):
        from rest_framework.test import APIClient

        return APIClient()
    from django.test import Client

    return Client()


def _as_other(url: str, other_api: Any, other_page_client: Any) -> Any:
    return other_api if url.startswith("/api/") else other_page_client


def _assert_leaks_nothing(response: Any, owned: Any) -> None:
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    )
    for secret in (
        b"alice",
        owned.plan.name.encode(),
        owned.artifact.sha256.encode(),
        owned.token.prefix.encode(),
        owned.upload.sha256.encode(),
    ):
        assert secret not in body, f"{secret!r} leaked in a {response.status_code}"


def test_every_route_with_an_object_id_is_in_the_table() -> None:
    """A route that takes an id and is not in ROUTES fails here: add it to the table."""
    found = {f.key: f for f in id_routes() if not f.route.startswith("admin/")}
    missing = sorted(set(found) - set(ROUTES))
    stale = sorted(set(ROUTES) - set(found))
    assert not missing, f"routes with an id but no ownership check in ROUTES: {missing}"
    assert not stale, f"ROUTES names routes that no longer exist: {stale}"
    # An API view that gains a method (PATCH on a plan, say) must be listed too.
    for key, f in found.items():
        view_class = getattr(f.callback, "view_class", None) or getattr(
            f.callback, "cls", None
        )
        if view_class is None:
            continue
        implemented = {
            m.upper()
            for m in ("get", "post", "put", "patch", "delete")
            if hasattr(view_class, m)
        }
        assert implemented <= set(ROUTES[key].methods), (key, implemented)
    pages = [k for k in found if not found[k].route.startswith("api/")]
    reliability.record(SECTION, "routes with an object id (pages)", len(pages))
    reliability.record(
        SECTION, "routes with an object id (API)", len(found) - len(pages)
    )


@pytest.mark.parametrize(("name", "method"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_another_user_gets_404_and_changes_nothing(
    name: str,
    method: str,
    owned: Any,
    user: Any,
    other_user: Any,
    api: Any,
    page_client: Any,
    other_api: Any,
    other_page_client: Any,
) -> None:
    url = _url(name, owned)
    before = _state(owned, user, other_user)

    response = _request(_as_other(url, other_api, other_page_client), method, url)

    assert response.status_code == 404, (
        url,
        response.status_code,
        response.content[:300],
    )
    _assert_leaks_nothing(response, owned)
    assert _state(owned, user, other_user) == before
    reliability.add(SECTION, "requests by another user answered 404")
    owner_status = ROUTES[name].owner_get
    if method == "GET" and owner_status is not None:
        owner = api if url.startswith("/api/") else page_client
        assert owner.get(url).status_code == owner_status, "the owner must reach it"


@pytest.mark.parametrize(("name", "method"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_anonymous_gets_a_login_redirect_or_401(
    name: str, method: str, owned: Any, user: Any, other_user: Any
) -> None:
    url = _url(name, owned)
    before = _state(owned, user, other_user)

    response = _request(_anonymous(url), method, url)

    if url.startswith("/api/"):
        assert response.status_code == 401, (url, response.status_code)
        assert response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 302, (url, response.status_code)
        assert response.headers["Location"].startswith(f"{reverse('login')}?next=")
    _assert_leaks_nothing(response, owned)
    assert _state(owned, user, other_user) == before
    reliability.add(SECTION, "anonymous requests refused (login redirect or 401)")


def test_no_method_on_any_id_route_lets_another_user_or_anonymous_through(
    owned: Any, user: Any, other_user: Any, other_api: Any, other_page_client: Any
) -> None:
    """Unlisted methods still answer 404/405 (bob) or login/401 (nobody)."""
    before = _state(owned, user, other_user)
    checked = 0
    for name in ROUTES:
        url = _url(name, owned)
        for method in METHODS:
            bob = _request(_as_other(url, other_api, other_page_client), method, url)
            assert bob.status_code in (404, 405), (method, url, bob.status_code)
            nobody = _request(_anonymous(url), method, url)
            assert nobody.status_code in (302, 401, 405), (
                method,
                url,
                nobody.status_code,
            )
            if nobody.status_code == 302:
                assert nobody.headers["Location"].startswith(reverse("login"))
            checked += 2
    assert _state(owned, user, other_user) == before
    reliability.record(
        SECTION, "route × method probes (any method, bob and anonymous)", checked
    )


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "0",
        "-1",
        "..",
        "%2e%2e",
        "' OR 1=1 --",
        str(uuid.uuid4()),
        "9" * 40,
    ],
)
def test_malformed_or_unknown_ids_are_404_not_500(
    bad_id: str, owned: Any, api: Any, page_client: Any
) -> None:
    for name, route in ROUTES.items():
        kwargs = {**_kwargs(name, owned), "pk": bad_id}
        try:
            url = reverse(name, kwargs=kwargs)
        except Exception:  # an <int:pk> route does not take the text at all
            continue
        client = api if url.startswith("/api/") else page_client
        for method in route.methods:
            response = _request(client, method, url)
            assert response.status_code == 404, (method, url, response.status_code)


def test_admin_routes_with_ids_need_a_staff_account(
    owned: Any, user: Any, other_page_client: Any
) -> None:
    from django.test import Client

    admin_login = reverse("admin:login")
    checked = 0
    for found in id_routes():
        if not found.route.startswith("admin/"):
            continue
        params = sorted(found.params - NOT_IDS)
        url = "/" + found.route
        for param in params:
            url = url.replace(f"<path:{param}>", str(user.pk)).replace(
                f"<{param}>", str(user.pk)
            )
        for client in (other_page_client, Client()):
            response = client.get(url)
            assert response.status_code == 302, (url, response.status_code)
            assert response.headers["Location"].startswith(admin_login), url
            checked += 1
    assert checked
    reliability.record(
        SECTION,
        "admin routes with an id (non-staff and anonymous refused)",
        checked // 2,
    )


def test_compare_refuses_another_users_plans(
    owned: Any, page_client: Any, other_page_client: Any
) -> None:
    """``/compare/?plan=…&plan=…`` takes ids in its query string."""
    url = f"{reverse('plan-compare')}?plan={owned.plan.pk}&plan={owned.plan.pk}"
    response = other_page_client.get(url)
    assert response.status_code == 404
    _assert_leaks_nothing(response, owned)
    assert page_client.get(url).status_code == 200
    reliability.add(SECTION, "requests by another user answered 404")


def test_a_job_cannot_link_another_users_plan_or_upload(
    owned: Any, other_api: Any, other_user: Any
) -> None:
    """Ids in request bodies are checked like ids in paths: 400, nothing created."""
    from quantjobs.models import Job

    bodies = [
        (
            {"method": "selftest", "formats": ["selftest"], "plan": str(owned.plan.pk)},
            "plan",
        ),
        (
            {"method": "selftest", "formats": ["selftest"], "plan": str(uuid.uuid4())},
            "plan",
        ),
        (
            {
                "method": "gguf",
                "formats": ["gguf-Q8_0"],
                "source_kind": "upload",
                "source_ref": str(owned.upload.pk),
            },
            "source_ref",
        ),
    ]
    for body, field in bodies:
        response = other_api.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 400, (
            body,
            response.status_code,
            response.content,
        )
        assert response.json()[field], response.json()
        _assert_leaks_nothing(response, owned)
        reliability.add(SECTION, "another user's ids in request bodies refused (400)")
    assert Job.objects.filter(user=other_user).count() == 0
    assert not owned.plan.jobs.exclude(user=owned.plan.user).exists()


def test_the_job_form_cannot_link_another_users_plan(
    owned: Any, other_page_client: Any, other_user: Any
) -> None:
    from quantjobs.models import Job

    response = other_page_client.post(
        reverse("job-new"),
        {
            "method": "selftest",
            "formats": "selftest",
            "source_kind": "sample",
            "plan": str(owned.plan.pk),
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "No such plan" in response.content.decode()
    assert Job.objects.filter(user=other_user).count() == 0


def _list_routes() -> list[Found]:
    skip = ("admin/", "api/schema/", "api/docs/", "accounts/", "healthz")
    return [
        f
        for f in _walk(get_resolver())
        if not f.params and not f.route.startswith(skip)
    ]


def test_lists_and_pages_without_ids_show_none_of_another_users_objects(
    owned: Any, other_api: Any, other_page_client: Any, api: Any
) -> None:
    secrets = [str(v) for k, v in owned.ids().items() if k != "token"] + [
        owned.token.prefix
    ]
    checked = 0
    for found in _list_routes():
        url = "/" + found.route
        client = other_api if url.startswith("/api/") else other_page_client
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        body = response.content.decode(errors="replace")
        for secret in secrets:
            assert secret not in body, (url, secret)
        checked += 1
    # The positive control: alice's own job list does show her jobs.
    assert str(owned.job.pk) in api.get("/api/v1/jobs/").content.decode()
    reliability.record(
        SECTION, "list routes and pages checked for other users' ids", checked
    )
