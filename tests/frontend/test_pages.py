"""The server-rendered pages, through Django's test client (no browser, no JavaScript)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from frontend.templatetags.quantplan import benchmark_job_for

pytestmark = pytest.mark.django_db

PLAN_FORM = {
    "model": "llama-3-70b",
    "gpus_chosen": ["a100-80gb"],
    "formats": ["fp16", "fp8", "awq-4bit-g128", "gguf-Q4_K_M", "gguf-Q2_K"],
    "context_tokens": "8192",
    "concurrency": "8",
    "engine": "vllm",
    "kv_cache_dtype": "f16",
    "utilization": "0.5",
    "action": "plan",
}


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def html_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert "Traceback" not in html
    return html


def test_the_plan_page_shows_charts_recommendation_and_cost_table(
    logged_in: Any,
) -> None:
    html = html_of(logged_in.post("/", PLAN_FORM))
    assert html.count("<svg") == 4  # two charts, each wide and in its phone layout
    assert "Memory per GPU (GB" in html
    assert 'class="capacity"' in html
    assert "Recommended format" in html
    assert "Quantize and benchmark" in html
    assert "$/1M tok" in html and "$/month" in html
    assert "NVIDIA A100 80GB SXM" in html


def test_an_api_price_adds_its_column_and_the_break_even_volume(logged_in: Any) -> None:
    html = html_of(logged_in.post("/", {**PLAN_FORM, "api_price": "openai-gpt-4o"}))
    assert "API <span" in html
    assert "Break-even" in html


def test_the_plan_page_shows_owning_next_to_renting_where_the_gpu_is_sold(
    logged_in: Any,
) -> None:
    from planner import services
    from planner.services import PlanInput

    html = html_of(logged_in.post("/", PLAN_FORM))  # an A100 80GB has a purchase price
    assert "Owned <span" in html and "owned instead:" in html
    report = services.plan_compute(
        data=PlanInput(model="llama-3-70b", gpu="a100-80gb", formats=("gguf-Q4_K_M",),
                       context_tokens=8192, concurrency=8),
        user=None,
    )  # fmt: skip
    row = report.results[0]
    assert row.owned_cost_usd_per_month is not None
    assert f"${row.owned_cost_usd_per_month:,.0f}" in html
    assert row.owned_price_source.split(" + ")[0] in html  # the hover names the price


def test_the_plan_page_prices_owning_at_the_electricity_price_given(
    logged_in: Any,
) -> None:
    from planner import services
    from planner.services import PlanInput

    def owned_month(price: float | None) -> str:
        report = services.plan_compute(
            data=PlanInput(model="llama-3-70b", gpu="a100-80gb", formats=("gguf-Q4_K_M",),
                           context_tokens=8192, concurrency=8,
                           electricity_usd_per_kwh=price),
            user=None,
        )  # fmt: skip
        return f"${report.results[0].owned_cost_usd_per_month:,.0f}"

    form = {**PLAN_FORM, "formats": ["gguf-Q4_K_M"]}
    cheap, dear = owned_month(0.05), owned_month(0.50)
    assert cheap != dear
    page = html_of(logged_in.post("/", {**form, "electricity_usd_per_kwh": "0.5"}))
    assert dear in page and cheap not in page
    assert 'name="electricity_usd_per_kwh"' in page and 'value="0.5"' in page
    # Out of range: a form error on the field, the rest of the form kept.
    bad = html_of(logged_in.post("/", {**form, "electricity_usd_per_kwh": "99"}))
    assert "Ensure this value is less than or equal to 10" in bad
    assert 'value="llama-3-70b"' in bad
    # No purchase price listed (an A10): no owned column at all.
    a10 = html_of(logged_in.post("/", {**PLAN_FORM, "gpus_chosen": ["a10"]}))
    assert "Owned <span" not in a10 and "owned instead:" not in a10


def test_a_broken_config_is_a_field_error_next_to_it_and_keeps_the_text(
    logged_in: Any,
) -> None:
    broken = '{"hidden_size": 4096,, "num_attention_heads": 32}'
    html = html_of(logged_in.post("/", {**PLAN_FORM, "config_text": broken}))
    field = re.search(
        r'<div class="field has-error" id="field-config_text">.*?</div>\s*</div>',
        html,
        re.S,
    )
    assert field, "the config field is not marked as having an error"
    assert "config.json is not valid JSON" in field.group(0)
    assert (
        "{&quot;hidden_size&quot;: 4096,, &quot;num_attention_heads&quot;: 32}" in html
    )
    assert 'aria-invalid="true"' in field.group(0)
    assert "<svg" not in html


def test_an_unknown_model_is_an_error_on_the_model_field(logged_in: Any) -> None:
    html = html_of(logged_in.post("/", {**PLAN_FORM, "model": "llama-9-999b"}))
    assert re.search(r'id="field-model">.*?class="error"', html, re.S)
    assert 'value="llama-9-999b"' in html


def test_the_plan_form_offers_the_catalog_models_for_search(logged_in: Any) -> None:
    html = html_of(logged_in.get("/"))
    assert 'list="model-catalog"' in html
    datalist = html.split('<datalist id="model-catalog">')[1].split("</datalist>")[0]
    assert '<option value="llama-3-70b">' in datalist
    assert datalist.count("<option") > 20


def test_the_format_and_gpu_pickers_are_grouped_checkboxes_that_keep_the_selection(
    logged_in: Any,
) -> None:
    html = html_of(logged_in.post("/", {**PLAN_FORM, "model": ""}))
    formats = re.search(r'id="field-formats".*?</fieldset>\s*</div>', html, re.S).group(
        0
    )
    assert "<legend>GGUF (llama.cpp)" in formats
    assert re.search(
        r'type="checkbox" name="formats" value="gguf-Q2_K"[^>]* checked>', html
    )
    assert re.search(
        r'type="checkbox" name="formats" value="gguf-Q8_0"[^>]*"\s*>', html
    )
    # the choice is visible at a glance, also without JavaScript
    assert "5 selected" in formats and "gguf-Q4_K_M, gguf-Q2_K" in formats
    gpus = re.search(
        r'id="field-gpus_chosen".*?</fieldset>\s*</div>', html, re.S
    ).group(0)
    assert "<legend>CPU servers" in gpus
    assert re.search(r'value="a100-80gb"[^>]* checked>', gpus)
    # GPUs say their memory and price
    assert re.search(
        r"NVIDIA A100 80GB SXM</span> <span class=\"opt-detail\">80 GiB · from \$[\d.]+/h",
        gpus,
    )
    assert "Ctrl" not in html


@pytest.mark.parametrize(
    ("planned", "method", "job_format"),
    [
        ("gguf-Q4_K_M", "gguf", "gguf-Q4_K_M"),
        ("awq-4bit-g128", "awq", "awq-4bit-g128"),
        ("gptq-4bit-g128", "gptq", "gptq-4bit-g128"),
        ("fp16", "rtn", "rtn-int8-g-1"),
        ("fp8", "rtn", "rtn-int8-g-1"),
        ("int8", "rtn", "rtn-int8-g-1"),
        ("bf16", "rtn", "rtn-int8-g-1"),
    ],
)
def test_each_planned_format_maps_to_the_job_that_measures_it(
    planned: str, method: str, job_format: str
) -> None:
    assert benchmark_job_for(planned) == (method, job_format)


def test_quantize_and_benchmark_opens_a_filled_in_job_form(logged_in: Any) -> None:
    html = html_of(logged_in.post("/", PLAN_FORM))
    href = re.search(r'class="button benchmark-button" href="([^"]+)"', html).group(1)
    form = html_of(logged_in.get(href.replace("&amp;", "&")))
    assert "Runs on the bundled sample unless you choose another source" in form
    method = re.search(r'<select name="method"[^>]*>.*?</select>', form, re.S).group(0)
    rec = re.search(r"<h3>(\S+) <small", html).group(1)
    expected_method, expected_format = benchmark_job_for(rec)
    assert f'value="{expected_method}" selected' in method
    assert f'value="{expected_format}"' in form


def test_saved_plans_reopen_and_compare(logged_in: Any) -> None:
    from planner.models import Plan

    for gpu in ("a100-80gb", "h100-sxm"):
        response = logged_in.post(
            "/",
            {**PLAN_FORM, "gpus_chosen": [gpu], "action": "save", "name": f"on {gpu}"},
        )
        assert response.status_code == 302
    plans = list(Plan.objects.order_by("name"))
    listing = html_of(logged_in.get("/plans/"))
    assert "on a100-80gb" in listing and "on h100-sxm" in listing
    detail = html_of(logged_in.get(f"/plans/{plans[0].pk}/"))
    assert detail.count("<svg") == 4
    assert f"plan={plans[0].pk}" in detail  # the job form links the job to the plan
    compare = html_of(logged_in.get(f"/compare/?plan={plans[0].pk}&plan={plans[1].pk}"))
    assert "Side by side" in compare
    assert compare.count("<svg") == 8
    assert "NVIDIA H100 SXM5 80GB" in compare and "NVIDIA A100 80GB SXM" in compare
    ids = re.findall(r'\sid="([^"]+)"', compare)
    assert len(ids) == len(set(ids)), "duplicate element ids"


def test_every_empty_list_says_what_to_do_first(logged_in: Any) -> None:
    assert "Make a plan" in html_of(logged_in.get("/plans/"))
    jobs = html_of(logged_in.get("/jobs/"))
    assert "No jobs yet" in jobs and "Quantize the sample" in jobs
    assert "No worker is online" in jobs and "make worker" in jobs
    assert "Quantize the sample" in html_of(logged_in.get("/artifacts/"))
    assert "Create token" in html_of(logged_in.get("/tokens/"))


def test_the_jobs_page_lists_the_workers_online(logged_in: Any) -> None:
    from quantjobs.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(
        hostname="gpu-box-1",
        queues=["gpu"],
        capabilities={
            "cpu_count": 32,
            "memory_bytes": 256e9,
            "gpus": [{"name": "NVIDIA L4", "memory_bytes": 24e9}],
        },
    )
    html = html_of(logged_in.get("/jobs/"))
    workers = html.split('id="workers"')[1]
    assert "gpu-box-1" in workers
    assert "NVIDIA L4" in workers and "24.0 GB" in workers
    assert '<span class="badge">gpu</span>' in workers
    assert "No CPU worker is online" in html


def _finished_job(user: Any) -> Any:
    from quantjobs.models import Artifact, Job, JobResult

    job = Job.objects.create(
        user=user,
        method="gguf",
        formats=["gguf-Q8_0", "gguf-Q4_K_M"],
        source_kind="sample",
        source_ref="smollm2-135m",
        status="SUCCEEDED",
        progress=1.0,
    )
    for fmt, size, ppl in (
        ("gguf-Q8_0", 145_000_000, 20.1),
        ("gguf-Q4_K_M", 105_000_000, 21.4),
    ):
        artifact = Artifact.objects.create(
            user=user,
            job=job,
            format=fmt,
            filename=f"m.{fmt}.gguf",
            path=f"x/{fmt}",
            size_bytes=size,
            sha256="ab" * 32,
        )
        JobResult.objects.create(
            job=job,
            format=fmt,
            artifact=artifact,
            metrics={
                "perplexity": ppl,
                "base_perplexity": 20.0,
                "kl_divergence": 0.01,
                "top1_agreement": 0.95,
                "prompt_tokens_per_s": 900.0,
                "generation_tokens_per_s": 80.0,
                "peak_memory_bytes": 300 * 2**20,
            },
            projection={"artifact_bytes": size * 0.98, "memory_bytes": 280 * 2**20},
        )
    return job


def test_a_finished_job_shows_results_projections_chart_and_downloads(
    logged_in: Any, user: Any
) -> None:
    job = _finished_job(user)
    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    table = html.split('id="results-table"')[1].split("</table>")[0]
    for heading in (
        "Perplexity",
        "Change",
        "KLD",
        "Top-1",
        "Generate",
        "Projected",
    ):
        assert heading in table
    assert "+7.00%" in table  # (21.4 - 20) / 20
    assert "+2.04%" in table  # size against the projection
    assert "95.0%" in table
    assert "<svg" in html and "File size (MB" in html
    assert html.count('data-sha256="' + "ab" * 32) == 2
    assert html.count("/download/") >= 2


def test_the_artifacts_page_shows_the_full_sha256_and_a_labelled_download(
    logged_in: Any, user: Any
) -> None:
    _finished_job(user)
    html = html_of(logged_in.get("/artifacts/"))
    assert html.count("ab" * 32) >= 2
    assert 'aria-label="Download m.gguf-Q8_0.gguf"' in html


def test_job_form_errors_stay_next_to_the_field_and_keep_input(logged_in: Any) -> None:
    html = html_of(
        logged_in.post(
            "/jobs/new/",
            {
                "method": "gguf",
                "formats": "gguf-Q9_X",
                "source_kind": "sample",
                "name": "my try",
            },
        )
    )
    assert re.search(r'id="field-formats">.*?class="error"', html, re.S)
    assert 'value="gguf-Q9_X"' in html and 'value="my try"' in html


def test_every_field_has_a_label_and_help_is_linked(logged_in: Any) -> None:
    for path in ("/", "/jobs/new/", "/tokens/"):
        html = html_of(logged_in.get(path))
        controls = re.findall(r"<(?:input|select|textarea)[^>]*>", html)
        for control in controls:
            if 'type="hidden"' in control or " id=" not in control:
                continue
            ident = re.search(r'\sid="([^"]+)"', control).group(1)
            assert f'for="{ident}"' in html, (path, ident)
        for described in re.findall(r'aria-describedby="([^"]+)"', html):
            for ident in described.split():
                assert f'id="{ident}"' in html, (path, ident)


def test_pages_load_nothing_from_another_host(logged_in: Any, user: Any) -> None:
    job = _finished_job(user)
    for path in ("/", "/jobs/", f"/jobs/{job.pk}/", "/artifacts/", "/tokens/", "/api/"):
        html = html_of(logged_in.get(path))
        for url in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html):
            assert url.startswith("/"), (path, url)
        assert "@import" not in html and "fonts.googleapis" not in html


def test_when_no_format_is_recommended_the_page_says_why_and_what_to_try(
    logged_in: Any,
) -> None:
    html = html_of(logged_in.post("/", {**PLAN_FORM, "min_tokens_per_s": "100000"}))
    notice = html.split('class="notice recommendation none"')[1].split("</div>")[0]
    assert "No format is recommended" in notice
    assert "tokens/s per sequence is below 100000" in notice
    assert notice.count("<li>") == len(PLAN_FORM["formats"])
    assert "Try more GPUs per server" in notice
    assert "Quantize and benchmark" not in html.split("Memory per GPU")[0]


def test_display_filters_label_money_and_token_counts() -> None:
    from frontend.templatetags.quantplan import tokens, usd

    assert usd(1234.5) == "$1,234.50"
    assert usd(1.98555, 3) == "$1.986"
    assert usd(None) == ""
    assert tokens(1.23e9) == "1.2 B"
    assert tokens(45_000_000) == "45.0 M"
    assert tokens(None) == ""


def test_a_change_that_rounds_to_zero_has_no_sign() -> None:
    from frontend.templatetags.units import pct

    assert pct(-0.0004) == "0.00%"
    assert pct(2.04) == "+2.04%"
    assert pct(-1.5) == "-1.50%"
    assert pct(None) == ""
