"""The shared dashboard in a real browser (Debian's chromium through Playwright): the
public planner and its links, the pickers by keyboard and thumb, comparisons, phones,
and an axe-core accessibility scan of every page.

Screenshots land in test-output/screenshots/dashboard-*.png for a person to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.conftest import (
    PASSWORD,
    assert_no_horizontal_overflow,
    axe_violations,
    choose_gpus,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}


def make_user(username: str = "dana") -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username=username, password=PASSWORD)


def kpis(page: Any) -> list[str]:
    return page.locator(".plan-report .kpi dd.v").all_inner_texts()


def fit_totals(page: Any) -> list[str]:
    return page.locator(".fit-table tbody tr td:nth-child(2)").all_inner_texts()


def test_an_anonymous_visitor_plans_picks_by_keyboard_and_shares_a_link(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    page.goto("/")
    assert "What Quantplan does" in page.locator(".intro").inner_text()
    assert page.locator(".plan-report").count() == 1  # the live example
    assert axe_violations(page) == []
    screenshot(page, "dashboard-landing")

    # GPU picker by keyboard: filter, tick with Space, and the choice shows at once.
    gpus = page.locator("#field-gpus_chosen")
    assert "1 selected: NVIDIA A100 80GB SXM" in gpus.locator(".picked").inner_text()
    gpus.get_by_label("Filter gpus (or cpu server)").fill("h100")
    visible = gpus.locator("li[data-picker-option]:visible")
    assert visible.count() >= 1
    assert all("H100" in t for t in visible.all_inner_texts())
    visible.first.locator("input").focus()
    page.keyboard.press("Space")
    picked = gpus.locator(".picked").inner_text()
    assert picked.startswith("2 selected") and "H100" in picked
    gpus.get_by_label("Filter gpus (or cpu server)").fill("")

    # Formats: select none, then all GGUF by the group's toggle.
    formats = page.locator("#field-formats")
    formats.get_by_role("button", name="Select none").click()
    assert formats.locator(".picked").inner_text().startswith("0 selected")
    formats.get_by_role("button", name="Select all of GGUF (llama.cpp)").click()
    count = int(formats.locator("[data-picked-count]").inner_text().split()[0])
    assert count == formats.locator("input[value^=gguf-]").count() > 5
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_load_state()

    assert page.locator(".plan-report").count() == 2
    side = page.locator(".compare-table")
    assert "NVIDIA A100 80GB SXM" in side.inner_text() and "H100" in side.inner_text()
    screenshot(page, "dashboard-two-gpus")
    assert axe_violations(page) == []
    numbers, totals = kpis(page), fit_totals(page)
    link = page.locator("#share-url").input_value()
    assert link.startswith("http") and "gpus_chosen=h100" in link

    # The link in a fresh browser (no cookies, no account) shows the same numbers.
    fresh = new_page()
    fresh.goto(link)
    assert kpis(fresh) == numbers and fit_totals(fresh) == totals
    assert fresh.locator(".plan-report").count() == 2

    # Saving asks for an account and comes back to the same plan afterwards.
    make_user()
    fresh.get_by_role("button", name="Plan and save").click()
    fresh.wait_for_url("**/accounts/login/**")
    fresh.get_by_label("Username").fill("dana")
    fresh.get_by_label("Password").fill(PASSWORD)
    fresh.get_by_role("button", name="Log in").click()
    fresh.wait_for_url(lambda url: "/accounts/login/" not in url)
    assert kpis(fresh) == numbers

    with fresh.expect_download() as download:
        fresh.get_by_role("link", name="Download CSV").click()
    csv_text = download.value.path().read_text()
    assert csv_text.startswith("model,gpu,gpu_name,format")
    assert "h100" in csv_text and "a100-80gb" in csv_text


def test_a_phone_gets_readable_pickers_and_tables_that_say_they_scroll(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    phone = new_page(**PHONE)
    phone.goto("/")
    assert_no_horizontal_overflow(phone)
    # thumb-sized targets: each option row is at least 36 px high
    row = phone.locator("#field-formats li[data-picker-option]").first.bounding_box()
    assert row["height"] >= 36
    phone.locator("#field-formats label", has_text="fp32").tap()
    assert (
        "12 selected: fp32, fp16"
        in phone.locator("#field-formats .picked").inner_text()
    )
    screenshot(phone, "dashboard-landing-phone")
    fit = phone.locator(".fit-table").first
    # key columns first: the format, the total and whether it fits are on screen
    heads = [t.lower() for t in fit.locator("thead th").all_text_contents()]
    assert heads[0].startswith("format") and heads[1].startswith("total")
    assert heads[2].startswith("fits")
    cell = fit.locator("tbody tr").first.locator("td").nth(1).bounding_box()
    assert cell["x"] + cell["width"] <= 390
    hints = phone.locator(".scroll-hint")
    assert hints.count() >= 2 and hints.first.is_visible()
    assert axe_violations(phone) == []
    phone.locator(".fit-table").first.scroll_into_view_if_needed()
    screenshot(phone, "dashboard-tables-phone")


def test_the_pickers_post_without_javascript(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    page = new_page(java_script_enabled=False)
    page.goto("/")
    assert page.locator("[data-picker-tools]").first.is_hidden()
    choose_gpus(page, ["h100-sxm", "l40s"])
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_load_state()
    assert page.locator(".plan-report").count() == 2
    assert "2 selected" in page.locator("#field-gpus_chosen .picked").inner_text()
    screenshot(page, "dashboard-no-js")


def test_a_team_saves_compares_renames_and_deletes_plans(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    make_user()
    page = new_page()
    log_in(page, "dana")
    page.goto("/")
    choose_gpus(page, ["a100-80gb", "h100-sxm", "l40s"])
    page.locator("details.more summary").click()
    page.get_by_label("Plan name (to save)").fill("70B: three GPUs")
    page.get_by_role("button", name="Plan and save").click()
    page.wait_for_url("**/comparisons/*/")
    assert page.locator("h1").inner_text() == "70B: three GPUs"
    assert page.locator(".plan-report").count() == 3
    assert page.locator(".compare-table thead th").count() == 4
    assert axe_violations(page) == []
    screenshot(page, "dashboard-comparison")

    page.get_by_label("Name").fill("70B on A100, H100, L40S")
    page.get_by_role("button", name="Rename").click()
    assert page.locator("h1").inner_text() == "70B on A100, H100, L40S"

    page.goto("/plans/")
    assert axe_violations(page) == []
    boxes = page.get_by_role("checkbox")
    assert boxes.count() == 3
    for box in boxes.all():
        box.check()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare/**")
    assert page.locator(".plan-report").count() == 3
    screenshot(page, "dashboard-compare-3")

    page.locator(".compare-head a").first.click()
    page.wait_for_url("**/plans/*/")
    assert axe_violations(page) == []
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete plan").click()
    page.wait_for_url("**/plans/")
    assert "Deleted plan" in page.locator(".messages").inner_text()
    assert page.get_by_role("checkbox").count() == 2

    phone = new_page(**PHONE, storage_state=page.context.storage_state())
    phone.goto("/plans/")
    assert_no_horizontal_overflow(phone)
    screenshot(phone, "dashboard-plan-list-phone")


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_page_passes_the_accessibility_scan(
    transactional_db: Any, new_page: Any, screenshot: Any, dark: bool
) -> None:
    make_user()
    anonymous = new_page(color_scheme="dark" if dark else "light")
    failures: dict[str, list[str]] = {}
    for path in ("/accounts/login/", "/accounts/signup/"):
        anonymous.goto(path)
        failures[path] = axe_violations(anonymous)
    page = new_page(color_scheme="dark" if dark else "light")
    log_in(page, "dana")
    for path in (
        "/",
        "/jobs/",
        "/jobs/new/",
        "/artifacts/",
        "/uploads/",
        "/capacity/",
        "/finetune/",
        "/tokens/",
        "/api/",
        "/plans/",
    ):
        page.goto(path)
        failures[path] = axe_violations(page)
    if dark:
        page.goto("/")
        screenshot(page, "dashboard-landing-dark")
        background = page.evaluate(
            "getComputedStyle(document.documentElement).backgroundColor"
        )
        assert re.match(r"rgb\((\d+), (\d+), (\d+)\)", background)
        assert sum(map(int, re.findall(r"\d+", background)[:3])) < 150, background
    assert {k: v for k, v in failures.items() if v} == {}


def test_sliders_plan_again_live_and_chart_values_show_on_focus(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    page.goto("/")
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("#replan").is_visible()
    before = fit_totals(page)

    # keyboard on the context slider: 8192 → 32768 tokens
    slider = page.get_by_role("slider", name=re.compile("Context length"))
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.locator("#replan-context-out").inner_text() == "32,768"
    expect(page.locator("#replan-status")).to_contain_text("Planned again")
    after = fit_totals(page)
    assert after != before
    assert "context_tokens=32768" in page.url
    assert page.locator("#id_context_tokens").input_value() == "32768"
    # the same numbers as planning 32768 tokens from the form
    fresh = new_page()
    fresh.goto(page.url)
    assert fit_totals(fresh) == after

    # chart values on keyboard focus
    mark = page.locator(".wide-only svg.chart rect.seg-weights").first
    mark.focus()
    tip = page.locator("#chart-tip")
    assert tip.is_visible()
    assert "Weights" in tip.inner_text() and "GB per GPU" in tip.inner_text()
    screenshot(page, "dashboard-replan-tooltip")
    assert axe_violations(page) == []


def test_a_queued_job_shows_its_place_in_the_queue_and_notifies_when_it_ends(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    from quantjobs.models import Job

    user = make_user()
    job = Job.objects.create(
        user=user,
        method="gguf",
        formats=["gguf-Q8_0"],
        source_kind="sample",
        source_ref="smollm2-135m",
        queue="cpu",
    )
    job.append_log("queued by the test")
    page = new_page(permissions=["notifications"])
    # Record what the page passes to the browser's real Notification.
    page.add_init_script(
        """(() => { const Real = window.Notification; window.__notes = [];
        window.Notification = function (title, options) {
          window.__notes.push(title); return new Real(title, options); };
        window.Notification.permission = Real.permission;
        window.Notification.requestPermission = Real.requestPermission.bind(Real); })()"""
    )
    log_in(page, "dana")
    page.goto(f"/jobs/{job.pk}/")
    assert page.locator("#job-position").inner_text().startswith("1 (next)")
    assert "when a cpu worker joins" in page.locator("#job-est-start").inner_text()
    assert page.locator("#job-log").inner_text().strip().endswith("queued by the test")
    page.get_by_role("button", name="Notify me when this job ends").click()
    expect(page.locator("#job-notify-state")).to_contain_text("notification")
    assert axe_violations(page) == []
    screenshot(page, "dashboard-job-queued")
    job.finish(Job.Status.CANCELLED, "Cancelled by the test.")
    # (wait_for_function compiles its predicate with eval, which the CSP forbids)
    for _ in range(200):
        if page.evaluate("() => (window.__notes || []).length") >= 1:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.__notes[0]") == "Quantplan: job cancelled"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the full log").click()
    assert "queued by the test" in download.value.path().read_text()


def test_a_model_uploads_from_the_browser_and_resumes_after_a_dropped_connection(
    transactional_db: Any,
    new_page: Any,
    screenshot: Any,
    clean_media: Any,
    redis_url: str,  # a stored upload is sent to a worker to be checked
) -> None:
    from quantjobs.models import ModelUpload
    from quantjobs.samples import list_samples

    make_user()
    page = new_page()
    log_in(page, "dana")
    page.goto("/uploads/")
    assert axe_violations(page) == []
    page.get_by_label("Model file").set_input_files(
        {"name": "weights.bin", "mimeType": "application/octet-stream", "buffer": b"x"}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-state")).to_have_class("error")
    assert "pickle" in page.locator("#upload-state").inner_text().lower()

    # The connection drops during the second 8 MB piece: tus asks the server where
    # the upload stands (HEAD) and goes on from there, not from the start.
    seen: list[tuple[str, str | None]] = []
    dropped: list[bool] = []

    def watch(route: Any) -> None:
        request = route.request
        offset = request.headers.get("upload-offset")
        seen.append((request.method, offset))
        if request.method == "PATCH" and offset not in (None, "0") and not dropped:
            dropped.append(True)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/uploads/tus/**", watch)
    sample = list_samples()[0]
    page.get_by_label("Model file").set_input_files(str(sample.path))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("[data-upload-progress]:not([hidden])")
    page.wait_for_selector(".uploads-table", timeout=180_000)
    assert "Uploaded SmolLM2" in page.locator(".messages").inner_text()
    assert ModelUpload.objects.get().sha256 == sample.sha256
    assert dropped and ("HEAD", None) in seen
    patches = [int(o) for m, o in seen if m == "PATCH" and o is not None]
    piece = 8 * 1024 * 1024
    assert patches[:3] == [0, piece, piece]  # the dropped piece is sent again
    assert len(patches) == -(-sample.path.stat().st_size // piece) + 1
    screenshot(page, "dashboard-uploads")
    phone = new_page(**PHONE, storage_state=page.context.storage_state())
    phone.goto("/uploads/")
    assert_no_horizontal_overflow(phone)
    screenshot(phone, "dashboard-uploads-phone")
