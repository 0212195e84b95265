"""Under the Content-Security-Policy every page still works in a real browser.

The policy allows scripts and styles from this site's files only; the browser
fixture (``new_page``) fails the test on any CSP violation it reports. The pages
with their own scripts or layouts are visited: login, sign-up, the planner, tokens,
the interactive API docs (Swagger UI) and the admin.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.frontend.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_pages_docs_and_admin_render_under_the_policy(
    transactional_db: Any, new_page: Any
) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user(
        username="erin", password=PASSWORD, is_staff=True, is_superuser=True
    )
    page = new_page()
    page.goto("/accounts/signup/")
    assert page.get_by_role("button", name="Sign up").is_visible()
    log_in(page, "erin")

    page.goto("/")
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("svg.chart").first.is_visible()

    page.goto("/tokens/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state()
    assert page.locator("#new-token").inner_text().startswith("qp_")
    # app.js reveals the copy button: scripts run under the policy.
    assert page.locator("button[data-copy]").is_visible()

    page.goto("/api/docs/")
    page.locator(".swagger-ui .info").wait_for()
    assert page.locator(".opblock").count() > 5

    page.goto("/admin/quantjobs/job/")
    assert page.locator("#changelist").is_visible()
    # The admin's own stylesheet applied (its header is not unstyled text).
    assert page.locator("#header").evaluate("e => getComputedStyle(e).display") != ""
