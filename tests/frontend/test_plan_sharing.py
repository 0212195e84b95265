"""The public planner: plans without an account, links that reproduce a plan, JSON and
CSV exports, comparisons saved as one, and renaming and deleting saved plans."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape
from typing import Any

import pytest

from tests.frontend.test_pages import PLAN_FORM, html_of

pytestmark = pytest.mark.django_db


def share_query(html: str) -> str:
    href = re.search(r'href="/\?([^"]+)" id="share-link"', html).group(1)
    return unescape(href)


def kpis(html: str) -> list[str]:
    """The recommendation's figures as the page prints them."""
    return re.findall(r'<dd class="v">([^<]+)</dd>', html)


def test_the_landing_page_shows_what_quantplan_does_with_a_live_example(
    client: Any,
) -> None:
    html = html_of(client.get("/"))
    assert "What Quantplan does" in html
    assert "llama-3-70b on NVIDIA A100 80GB SXM" in html
    assert "Recommended format" in html and html.count("<svg") == 4
    assert "Sign up" in html
    assert 'id="field-model"' in html


def test_an_anonymous_user_plans_and_the_link_reproduces_the_same_numbers(
    client: Any,
) -> None:
    form = {**PLAN_FORM, "gpus": "2", "concurrency": "4", "api_price": "openai-gpt-4o"}
    posted = html_of(client.post("/", form))
    query = share_query(posted)
    assert "gpus=2" in query and "concurrency=4" in query and "csrf" not in query
    again = html_of(client.get(f"/?{query}"))
    assert kpis(again) == kpis(posted) and kpis(posted)
    assert "What Quantplan does" not in again


def test_a_pasted_config_goes_into_the_link_and_titles_the_plan_by_its_name(
    client: Any,
) -> None:
    config = json.dumps(
        {
            "_name_or_path": "acme/TinyLlama-1.1B",
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "num_hidden_layers": 22,
            "vocab_size": 32000,
            "max_position_embeddings": 2048,
            "torch_dtype": "bfloat16",
        }
    )
    upload = io.BytesIO(config.encode())
    upload.name = "config.json"
    form = {**PLAN_FORM, "model": "", "context_tokens": "2048", "config_file": upload}
    html = html_of(client.post("/", form))
    assert "TinyLlama-1.1B on NVIDIA A100 80GB SXM" in html
    assert "custom on" not in html
    # the uploaded file stays as text, so planning again on another GPU keeps the model
    assert "&quot;hidden_size&quot;: 2048" in html
    query = share_query(html)
    assert "config_text=" in query
    again = html_of(client.get("/?" + query.replace("a100-80gb", "h100-sxm")))
    assert "TinyLlama-1.1B on NVIDIA H100" in again


def test_plan_exports_as_json_and_csv_without_an_account(client: Any) -> None:
    html = html_of(client.post("/", PLAN_FORM))
    query = share_query(html)
    body = client.get(f"/plan.json?{query}")
    assert body.status_code == 200 and body["Content-Type"] == "application/json"
    assert "attachment" in body["Content-Disposition"]
    data = body.json()
    assert data["share_url"].endswith(f"/?{query}")
    report = data["plans"][0]
    assert report["gpu"] == "a100-80gb"
    assert [r["format"] for r in report["results"]] == PLAN_FORM["formats"]
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/plan.csv?{query}").content.decode()))
    )
    assert [r["format"] for r in rows] == PLAN_FORM["formats"]
    rec = report["recommendation"]["format"]
    assert [r["format"] for r in rows if r["recommended"] == "True"] == [rec]
    first = report["results"][0]
    assert float(rows[0]["total_bytes_per_gpu"]) == first["total_bytes_per_gpu"]
    # Every row says where its speed, quality and memory come from.
    assert rows[0]["speed_source"] == "estimated (roofline, default efficiency)"
    assert rows[0]["quality_source"] == first["sources"]["quality"]
    assert rows[0]["memory_source"].startswith("estimated")


def test_an_export_link_with_bad_input_is_a_400_saying_what_to_change(
    client: Any,
) -> None:
    response = client.get("/plan.json?model=llama-9-999b&gpus_chosen=a100-80gb")
    assert response.status_code == 400
    assert "context_tokens" in response.json()["errors"]
    response = client.get(
        "/plan.json?model=llama-9-999b&gpus_chosen=a100-80gb&context_tokens=8192"
        "&concurrency=1&engine=vllm&kv_cache_dtype=f16&utilization=0.5&formats=fp16"
    )
    assert response.status_code == 400
    assert "llama-9-999b" in json.dumps(response.json()["errors"]["model"])


def test_saving_needs_an_account_and_comes_back_to_the_plan(client: Any) -> None:
    from planner.models import Plan

    response = client.post("/", {**PLAN_FORM, "action": "save"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert "gpus_chosen" in unescape(response["Location"])
    assert Plan.objects.count() == 0


def test_three_gpus_per_server_is_a_readable_error_on_that_field(client: Any) -> None:
    html = html_of(client.post("/", {**PLAN_FORM, "gpus": "3"}))
    field = re.search(r'id="field-gpus">.*?</div>\s*</div>', html, re.S).group(0)
    assert "1, 2, 4 or 8 GPUs" in field
    assert "must be one of" not in html


def test_a_cpu_server_plan_speaks_of_servers_not_gpus(client: Any) -> None:
    form = {
        **PLAN_FORM,
        "model": "llama-3-8b",
        "gpus_chosen": ["cpu-epyc-genoa-2s"],
        "engine": "llama.cpp",
        "formats": ["gguf-Q4_K_M", "gguf-Q8_0"],
        "concurrency": "1",
    }
    html = html_of(client.post("/", form))
    report = html.split('class="card plan-report"')[1]
    assert "Memory per server" in report and "GB/server" in report
    assert "GB/GPU" not in report and "Memory per GPU" not in report
    assert "GB usable per server" in report  # the chart too


def test_several_gpus_show_side_by_side_and_save_as_one_comparison(
    logged_in: Any,
) -> None:
    from planner.models import Comparison, Plan

    form = {**PLAN_FORM, "gpus_chosen": ["a100-80gb", "h100-sxm", "l40s"]}
    html = html_of(logged_in.post("/", form))
    assert "3 GPUs side by side" in html
    table = re.search(r'<table class="table compare-table">.*?</table>', html, re.S)
    for name in ("NVIDIA A100 80GB SXM", "NVIDIA H100", "L40S"):
        assert name in table.group(0)
    response = logged_in.post(
        "/", {**form, "action": "save", "name": "70B: A100 vs H100 vs L40S"}
    )
    comparison = Comparison.objects.get()
    assert response["Location"] == f"/comparisons/{comparison.pk}/"
    assert comparison.name == "70B: A100 vs H100 vs L40S"
    assert Plan.objects.filter(comparison=comparison).count() == 3
    page = html_of(logged_in.get(response["Location"]))
    assert page.count('class="card plan-report"') == 3
    assert "NVIDIA H100" in page and "NVIDIA A100 80GB SXM" in page
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    listing = html_of(logged_in.get("/plans/"))
    assert "70B: A100 vs H100 vs L40S" in listing
    rows = list(
        csv.DictReader(
            io.StringIO(
                logged_in.get(f"/comparisons/{comparison.pk}/plan.csv").content.decode()
            )
        )
    )
    assert {r["gpu"] for r in rows} == {"a100-80gb", "h100-sxm", "l40s"}


def test_any_number_of_saved_plans_compare(logged_in: Any) -> None:
    from planner.models import Plan

    for gpu in ("a100-80gb", "h100-sxm", "l40s"):
        logged_in.post("/", {**PLAN_FORM, "gpus_chosen": [gpu], "action": "save"})
    ids = [str(p.pk) for p in Plan.objects.all()]
    html = html_of(logged_in.get("/compare/?" + "&".join(f"plan={i}" for i in ids)))
    assert "Compare 3 plans" in html
    assert html.count('class="card plan-report"') == 3
    one = logged_in.get(f"/compare/?plan={ids[0]}")
    assert one.status_code == 302


def test_saved_plans_rename_delete_and_export(logged_in: Any, user: Any) -> None:
    from django.contrib.auth.models import User

    from planner.models import Plan

    logged_in.post("/", {**PLAN_FORM, "action": "save", "name": "first"})
    plan = Plan.objects.get()
    detail = html_of(logged_in.get(f"/plans/{plan.pk}/"))
    again = html_of(logged_in.get("/?" + share_query(detail)))
    assert kpis(again) == kpis(detail)
    assert logged_in.get(f"/plans/{plan.pk}/plan.json").json()["plans"][0]["gpu"] == (
        "a100-80gb"
    )
    logged_in.post(f"/plans/{plan.pk}/rename/", {"name": "  "})
    plan.refresh_from_db()
    assert plan.name == "first"
    page = html_of(logged_in.get(f"/plans/{plan.pk}/"))
    assert "Give a name" in page
    logged_in.post(f"/plans/{plan.pk}/rename/", {"name": "70B on A100"})
    plan.refresh_from_db()
    assert plan.name == "70B on A100"
    other = User.objects.create_user("mallory", password="x" * 12)
    logged_in.force_login(other)
    assert logged_in.post(f"/plans/{plan.pk}/delete/").status_code == 404
    logged_in.force_login(user)
    assert logged_in.get(f"/plans/{plan.pk}/delete/").status_code == 405
    assert logged_in.post(f"/plans/{plan.pk}/delete/").status_code == 302
    assert not Plan.objects.exists()


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client
