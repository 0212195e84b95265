"""Browser fixtures: Debian's chromium driven by Playwright, against ``live_server``.

Playwright never downloads a browser here: it launches /usr/bin/chromium (``make
install`` installs it). Screenshots of every page a test visits land in
``test-output/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("QUANTPLAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "a long secret 8!"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module (fails, not skips, when it is missing)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, so Django takes the
    # test's own ORM calls for async code; they are plain synchronous calls. Only for
    # as long as the browser lives.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Any, live_server: Any) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (desktop size unless told otherwise)."""
    contexts: list[Any] = []
    js_errors: list[str] = []

    def open_page(**options: Any) -> Any:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("base_url", live_server.url)
        options.setdefault("accept_downloads", True)
        context = browser.new_context(**options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: js_errors.append(f"{page.url}: {exc}"))
        # A script or style the Content-Security-Policy blocked is an error too.
        page.on(
            "console",
            lambda msg: (
                js_errors.append(f"{page.url}: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not js_errors, f"JavaScript errors: {js_errors}"


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot as test-output/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def log_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def assert_no_horizontal_overflow(page: Any) -> None:
    """Nothing sticks out sideways: only scroll containers may be wider."""
    width = page.evaluate("document.documentElement.clientWidth")
    scroll = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        """(width) => [...document.querySelectorAll("body *")]
        .filter(e => e.getBoundingClientRect().right > width + 1)
        .filter(e => !e.closest(".table-scroll, .chart-scroll, pre"))
        .slice(0, 8).map(e => e.tagName + "." + e.className + "#" + e.id)""",
        width,
    )
    assert scroll <= width, f"the page is {scroll}px wide in {width}px: {wide}"


def choose_gpus(page: Any, gpu_ids: list[str]) -> None:
    """Tick exactly these GPUs in the GPU picker (a checkbox group)."""
    for box in page.locator("input[type=checkbox][name=gpus_chosen]").all():
        want = box.get_attribute("value") in gpu_ids
        if box.is_checked() != want:
            box.set_checked(want, force=not box.is_visible())


AXE = ROOT / "tests" / "frontend" / "vendor" / "axe-core" / "axe.min.js"


def axe_violations(
    page: Any, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """axe-core's violations of these impacts on the page as it is now (WCAG 2 A/AA)."""
    # Served from the page's own origin (the test answers the request), so the
    # Content-Security-Policy (script-src 'self') stays on while axe runs.
    page.route(
        "**/__axe-core__.js",
        lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"),
    )
    page.add_script_tag(url="/__axe-core__.js")
    result = page.evaluate(
        """async () => {
        const r = await axe.run(document, {runOnly: {type: "tag",
            values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
        return r.violations.map(v => ({id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " +
                (n.failureSummary || "").split("\\n").slice(0, 2).join(" "))}));
    }"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['nodes']}"
        for v in result
        if v["impact"] in impacts
    ]
