"""The pages in a real browser: Debian's chromium through Playwright, against the live
server, and for jobs a real Celery worker on a real Redis.

Each test saves full-page screenshots to test-output/screenshots/ for review.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import pytest

from tests.frontend.conftest import (
    PASSWORD,
    assert_no_horizontal_overflow,
    choose_gpus,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TERMINAL = {"Succeeded", "Failed", "Cancelled", "Timed out"}
# Text boxes that overlap by more than this many pixels count as overlapping.
OVERLAP_TOLERANCE_PX = 1.0


def make_user(username: str = "dana") -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username=username, password=PASSWORD)


def overlapping_chart_text(page: Any) -> list[tuple[str, str]]:
    """Pairs of text elements that overlap inside any chart, as the browser lays them out."""
    return page.evaluate(
        """(tol) => {
        const pairs = [];
        for (const svg of document.querySelectorAll("svg.chart")) {
          if (!svg.getBoundingClientRect().width) continue;  // the other layout
          const boxes = [...svg.querySelectorAll("text")].map(t => {
            const r = t.getBoundingClientRect();
            return {text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom};
          });
          for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i], b = boxes[j];
            if (a.l + tol < b.r && b.l + tol < a.r && a.t + tol < b.b && b.t + tol < a.b)
              pairs.push([a.text, b.text]);
          }
        }
        return pairs;
    }""",
        OVERLAP_TOLERANCE_PX,
    )


def chart_text_outside_its_chart(page: Any) -> list[str]:
    """Text drawn beyond the chart's own box (clipped or spilling over)."""
    return page.evaluate(
        """() => {
        const out = [];
        for (const svg of document.querySelectorAll("svg.chart")) {
          const box = svg.getBoundingClientRect();
          if (!box.width) continue;  // the other layout
          for (const t of svg.querySelectorAll("text")) {
            const r = t.getBoundingClientRect();
            if (r.left < box.left - 1 || r.right > box.right + 1 ||
                r.top < box.top - 1 || r.bottom > box.bottom + 1) out.push(t.textContent);
          }
        }
        return out;
    }"""
    )


def submit_plan(page: Any) -> None:
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_load_state()


def test_sign_up_then_plan_llama_3_70b_on_an_a100(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    page.goto("/accounts/signup/")
    screenshot(page, "signup")
    page.get_by_label("Username").fill("erin")
    page.get_by_label(re.compile(r"^Password\W*$")).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(lambda url: "/accounts/" not in url)
    assert "Welcome, erin" in page.locator(".messages").inner_text()

    page.get_by_label("Model").fill("llama-3-70b")
    choose_gpus(page, ["a100-80gb"])
    submit_plan(page)

    report = page.locator(".plan-report")
    assert report.count() == 1
    assert "llama-3-70b on NVIDIA A100 80GB SXM" in report.locator("h2").inner_text()
    memory = report.locator(".wide-only svg.chart").first
    memory_text = memory.locator("text").all_text_contents()
    assert "Memory per GPU (GB, 10⁹ bytes)" in memory_text
    assert any(t.endswith("GB usable per GPU") for t in memory_text)
    assert memory.locator("line.capacity").count() == 1
    capacity = memory.locator(
        "line.capacity"
    ).bounding_box()  # zero-width: no is_visible
    assert capacity is not None and capacity["height"] > 100
    assert memory.locator("rect.seg-weights").count() >= 5

    recommendation = report.locator(".recommendation")
    assert "Recommended format" in recommendation.text_content()
    assert recommendation.locator(".reasons li").count() >= 2
    assert recommendation.get_by_role(
        "link", name="Quantize and benchmark"
    ).is_visible()
    assert report.locator(".cost-table").is_visible()
    quality = report.locator(".wide-only svg.chart").nth(1)
    assert quality.locator(".point.pareto").count() >= 2
    assert (
        "Cost per 1M tokens, prompt + output (USD)"
        in quality.locator("text").all_text_contents()
    )

    assert overlapping_chart_text(page) == []
    assert chart_text_outside_its_chart(page) == []
    screenshot(page, "plan-results")

    # The same plan on a phone: readable, nothing sticking out sideways.
    phone = new_page(
        viewport={"width": 390, "height": 844},
        storage_state=page.context.storage_state(),
        is_mobile=True,
        device_scale_factor=2,
    )
    phone.goto("/")
    submit_plan(phone)
    phone_charts = phone.locator(".plan-report .narrow-only svg.chart")
    assert phone_charts.count() == 2
    assert phone_charts.first.is_visible()
    assert phone.locator(".plan-report .wide-only").first.is_hidden()
    assert overlapping_chart_text(phone) == []
    assert chart_text_outside_its_chart(phone) == []
    screenshot(phone, "plan-narrow-390")
    assert_no_horizontal_overflow(phone)


def test_a_broken_config_shows_the_error_next_to_the_field_and_keeps_the_text(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    make_user()
    page = new_page()
    page.goto("/accounts/login/")
    screenshot(page, "login")
    log_in(page, "dana")
    broken = '{\n  "hidden_size": 4096,\n  "num_attention_heads": 32,,\n}'
    config = page.get_by_label("…or paste config.json")
    config.fill(broken)
    submit_plan(page)

    error = page.locator("#field-config_text .error")
    assert error.is_visible()
    assert "config.json is not valid JSON" in error.inner_text()
    assert "line 3" in error.inner_text()
    config = page.get_by_label("…or paste config.json")
    assert config.input_value() == broken
    assert config.get_attribute("aria-invalid") == "true"
    assert "_error" in (config.get_attribute("aria-describedby") or "")
    # Next to the field: just above it, in the same column.
    error_box, field_box = error.bounding_box(), config.bounding_box()
    assert 0 <= field_box["y"] - (error_box["y"] + error_box["height"]) < 24
    assert abs(error_box["x"] - field_box["x"]) < 4
    assert page.locator(".plan-report").count() == 0
    assert "Traceback" not in page.content()
    screenshot(page, "plan-error")


def test_plans_and_tokens_work_without_javascript(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    make_user()
    page = new_page(java_script_enabled=False)
    log_in(page, "dana")

    submit_plan(page)
    assert page.locator(".plan-report .wide-only svg.chart").count() == 2
    assert "Recommended format" in page.locator(".recommendation").text_content()

    for gpu in ("a100-80gb", "h100-sxm"):
        page.goto("/")
        choose_gpus(page, [gpu])
        page.locator("details.more summary").click()
        page.get_by_label("Plan name (to save)").fill(f"70B on {gpu}")
        page.get_by_role("button", name="Plan and save").click()
        page.wait_for_url("**/plans/*/")
    page.goto("/plans/")
    screenshot(page, "plan-list")
    for checkbox in page.get_by_role("checkbox").all():
        checkbox.check()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare/**")
    assert page.locator(".compare-table").is_visible()
    assert page.locator(".plan-report").count() == 2
    screenshot(page, "plan-compare")

    page.goto("/tokens/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("qp_")
    assert page.locator(".tokens-table").get_by_text("laptop").is_visible()
    screenshot(page, "tokens")
    page.get_by_role("button", name="Revoke token laptop").click()
    assert "revoked" in page.locator(".messages").inner_text()
    assert page.locator(".tokens-table").count() == 0

    page.get_by_role("button", name="Create token").click()  # empty name
    assert "This field is required." in page.locator("#field-name .error").inner_text()


def test_a_finished_job_reads_well_on_a_desktop_and_a_phone(
    transactional_db: Any, new_page: Any, screenshot: Any
) -> None:
    from tests.frontend.test_pages import _finished_job

    job = _finished_job(make_user())
    page = new_page()
    log_in(page, "dana")
    page.goto(f"/jobs/{job.pk}/")
    rows = page.locator("#results-table tbody tr")
    assert rows.count() == 2
    assert page.locator(".wide-only svg.chart").is_visible()
    assert overlapping_chart_text(page) == []
    assert chart_text_outside_its_chart(page) == []
    screenshot(page, "job-results")
    table = page.locator("#results-table").bounding_box()
    assert table["width"] <= page.locator("#results-table").evaluate(
        "t => t.parentElement.clientWidth"
    ), "the results table fits a desktop without scrolling"

    phone = new_page(
        viewport={"width": 390, "height": 844},
        storage_state=page.context.storage_state(),
        is_mobile=True,
        device_scale_factor=2,
    )
    phone.goto(f"/jobs/{job.pk}/")
    assert phone.locator(".narrow-only svg.chart").is_visible()
    screenshot(phone, "job-narrow-390")
    assert_no_horizontal_overflow(phone)
    phone.goto("/artifacts/")
    screenshot(phone, "artifacts-narrow-390")
    assert_no_horizontal_overflow(phone)
    # One card per artifact: its name reads on one or two lines, not a letter a line.
    assert (
        phone.locator(".artifacts-table td.filename").first.bounding_box()["height"]
        < 60
    )
    phone.goto("/jobs/")
    screenshot(phone, "jobs-list-narrow-390")
    assert_no_horizontal_overflow(phone)


JOB_METHOD = "gguf"  # "selftest" while the GGUF backend is not there yet


def read_job_state(page: Any) -> dict[str, Any] | None:
    try:
        return page.evaluate(
            """() => ({
            marker: window.__qpMarker === true,
            value: Number(document.getElementById("job-progress").value),
            status: document.getElementById("job-status").textContent.trim(),
        })"""
        )
    except Exception:  # the page is reloading: no document to read right now
        return None


@pytest.mark.worker
def test_a_gguf_job_shows_live_progress_then_its_artifact_downloads_with_its_sha256(
    start_worker: Any, new_page: Any, screenshot: Any
) -> None:
    make_user()
    start_worker("cpu")
    page = new_page()
    log_in(page, "dana")
    page.goto("/jobs/")
    assert "No jobs yet" in page.content()
    page.locator("#workers").get_by_text("cpu", exact=True).wait_for()
    screenshot(page, "jobs-list-empty")

    page.get_by_role("link", name="New job").click()
    page.get_by_label("Method").select_option(JOB_METHOD)
    page.get_by_label("Formats").fill(
        "gguf-Q4_K_M" if JOB_METHOD == "gguf" else "selftest"
    )
    assert page.get_by_label(re.compile(r"^Source\W*$")).input_value() == "sample"
    page.get_by_label("Context (tokens)").fill("512")
    page.get_by_label("Max evaluation chunks").fill("6")
    screenshot(page, "job-new")
    with page.expect_navigation() as submitted:
        page.get_by_role("button", name="Start job").click()
    status = submitted.value.status
    assert status < 500, (
        f"the job form answered {status}: {page.locator('h1').first.inner_text()}"
    )
    errors = page.locator(".form-errors")
    assert errors.count() == 0, errors.inner_text()
    page.wait_for_url("**/jobs/*-*/")

    # Follow the page as app.js updates it; it reloads itself once at the end.
    page.evaluate("window.__qpMarker = true")
    loads: list[float] = []
    page.on("load", lambda _page: loads.append(time.monotonic()))
    samples: list[dict[str, Any]] = []
    running_shot = False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = read_job_state(page)
        if state is not None:
            samples.append(state)
            if (
                not running_shot
                and state["status"] == "Running"
                and 0 < state["value"] < 100
            ):
                screenshot(page, "job-running")
                running_shot = True
            if not state["marker"] and state["status"] in TERMINAL:
                break
        time.sleep(0.1)
    else:
        pytest.fail(f"the job did not end in time; last states {samples[-5:]}")
    time.sleep(2.0)  # a second reload would show up here

    error = page.locator("#job-error")
    assert page.locator("#job-status").inner_text() == "Succeeded", (
        error.inner_text() if error.count() else samples[-5:]
    )
    before_reload = [s for s in samples if s["marker"]]
    running = [s["value"] for s in before_reload if s["status"] == "Running"]
    increases = sum(1 for a, b in zip(running, running[1:], strict=False) if b > a)
    assert increases >= 1, f"no progress seen while running: {running}"
    assert running == sorted(running), f"progress went backwards: {running}"
    assert any(s["value"] == 100 and s["status"] == "Succeeded" for s in before_reload)
    assert len(loads) == 1, "the page reloads itself exactly once, at the end"
    assert running_shot

    assert page.locator("#job-progress").get_attribute("value") == "100"
    table = page.locator("#results-table")
    assert table.is_visible()
    expected_format = "gguf-Q4_K_M" if JOB_METHOD == "gguf" else "selftest"
    assert table.locator(f"tr[data-format='{expected_format}']").count() == 1
    if JOB_METHOD == "gguf":
        assert page.locator(".wide-only svg.chart").count() == 1
        assert overlapping_chart_text(page) == []
    screenshot(page, "job-done")

    page.goto("/jobs/")
    screenshot(page, "jobs-list")
    page.get_by_role("link", name="Artifacts").click()
    row = page.locator("tr[data-artifact-row]").first
    shown_sha = row.locator("[data-sha256]").inner_text().strip()
    assert len(shown_sha) == 64
    screenshot(page, "artifacts")
    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download").click()
    download = download_info.value
    digest = hashlib.sha256()
    with open(download.path(), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == shown_sha
    if JOB_METHOD == "gguf":
        assert download.suggested_filename.endswith(".gguf")
