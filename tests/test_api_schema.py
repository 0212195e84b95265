"""The OpenAPI schema and the interactive docs are served from local files."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_schema_lists_the_v1_endpoints(client: Any) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/jobs/",
        "/api/v1/plans/",
        "/api/v1/artifacts/",
        "/api/v1/catalog/models/",
        "/api/v1/jobs/{id}/cancel/",
    ):
        assert path in paths, path


def test_docs_page_uses_no_cdn(client: Any) -> None:
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html


def test_pages_load_no_external_resources(client: Any, user: Any) -> None:
    import re

    client.force_login(user)
    # "/" shows a live example plan, whose text cites its sources by URL (titles,
    # notes) and whose SVG names its XML namespace: neither is loaded. What a browser
    # fetches is in src/href of script, link, img, iframe, or a CSS url().
    fetched = re.compile(
        r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)="
        r"\"(?:https?:)?//|url\(\s*['\"]?(?:https?:)?//|@import"
    )
    for path in ("/", "/jobs/", "/jobs/new/", "/artifacts/", "/tokens/", "/api/"):
        html = client.get(path).content.decode()
        if path != "/api/":
            assert not fetched.search(html), (path, fetched.search(html))
        assert "cdn." not in html and "unpkg" not in html, path
