"""``/api/v1/plans/`` and the catalog endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.django_db

REQUIRED_KEYS = {
    "format",
    "parameters",
    "artifact_bytes",
    "weights_bytes",
    "kv_cache_bytes",
    "overhead_bytes",
    "total_bytes_per_gpu",
    "gpus_needed",
    "fits",
    "ttft_s",
    "decode_tokens_per_s",
    "cost_usd_per_hour",
    "cost_usd_per_month",
    "cost_usd_per_million_tokens",
    "expected_quality_loss",
    "assumptions",
}


def test_a_plan_returns_one_object_per_format_with_the_documented_keys(
    api: Any,
) -> None:
    response = api.post(
        "/api/v1/plans/",
        {
            "model": "llama-3-70b",
            "gpu": "a100-80gb",
            "formats": ["fp16", "gguf-Q4_K_M"],
            "context": 8192,
            "concurrency": 4,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["format"] for r in results] == ["fp16", "gguf-Q4_K_M"]
    for row in results:
        assert REQUIRED_KEYS <= set(row), REQUIRED_KEYS - set(row)
    fp16 = results[0]
    assert 135e9 < fp16["weights_bytes"] < 145e9
    assert fp16["gpus_needed"] >= 2
    assert fp16["fits"] is True


def test_the_api_and_the_cli_give_the_same_objects(api: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "plan",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "l4",
        "--format",
        "gguf-Q8_0",
        "--context",
        "4096",
        "--concurrency",
        "2",
        "--json",
        stdout=out,
    )
    cli = json.loads(out.getvalue())
    api_rows = api.post(
        "/api/v1/plans/",
        {
            "model": "llama-3.1-8b",
            "gpu": "l4",
            "formats": ["gguf-Q8_0"],
            "context": 4096,
            "concurrency": 2,
        },
        format="json",
    ).json()["results"]
    assert cli == api_rows


def test_a_plan_prices_owning_next_to_renting_in_the_api_and_the_cli(
    api: Any,
) -> None:
    from io import StringIO

    from django.core.management import call_command

    def api_row(**extra: Any) -> dict[str, Any]:
        body = {"model": "llama-3.1-8b", "gpu": "l40s", "formats": ["gguf-Q4_K_M"]}
        response = api.post("/api/v1/plans/", {**body, **extra}, format="json")
        assert response.status_code == 200, response.content
        row: dict[str, Any] = response.json()["results"][0]
        return row

    cheap, dear = api_row(), api_row(electricity_usd_per_kwh=0.5)
    for row in (cheap, dear):
        assert row["cost_usd_per_month"] > 0 and row["price_source"]
        assert row["owned_cost_usd_per_month"] > 0
        assert row["owned_cost_usd_per_million_tokens"] > 0
        assert row["owned_price_source"].startswith("owned: ")
    # Only the owned figures depend on the electricity price.
    assert dear["cost_usd_per_month"] == cheap["cost_usd_per_month"]
    assert dear["owned_cost_usd_per_month"] > cheap["owned_cost_usd_per_month"]
    assert "at 0.5 USD/kWh" in dear["owned_price_source"]

    out = StringIO()
    call_command(
        "plan", "--model", "llama-3.1-8b", "--gpu", "l40s", "--format", "gguf-Q4_K_M",
        "--electricity-usd-per-kwh", "0.5", "--json", stdout=out,
    )  # fmt: skip
    assert json.loads(out.getvalue()) == [dear]
    out = StringIO()
    call_command(
        "plan", "--model", "llama-3.1-8b", "--gpu", "l40s", "--format", "gguf-Q4_K_M",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "owned $/mo" in text and "owned $/1M" in text
    assert f"{cheap['owned_cost_usd_per_month']:.0f}" in text
    owned = cheap["owned_price_source"].removeprefix("owned: ")
    assert f"Owning instead: {owned}" in text and "over 36 months" in owned

    # A GPU with no purchase price: null, and the text says why.
    a10 = api.post(
        "/api/v1/plans/", {"model": "llama-3.1-8b", "gpu": "a10"}, format="json"
    ).json()["results"][0]
    assert a10["owned_cost_usd_per_month"] is None
    assert a10["owned_price_source"].startswith("cannot price owning")

    refused = api.post(
        "/api/v1/plans/",
        {"model": "llama-3.1-8b", "gpu": "l40s", "electricity_usd_per_kwh": 11},
        format="json",
    )
    assert refused.status_code == 400
    assert "electricity_usd_per_kwh" in refused.json()


def test_saved_plans_are_listed_reopened_and_private(api: Any, other_api: Any) -> None:
    created = api.post(
        "/api/v1/plans/",
        {
            "model": "mixtral-8x7b",
            "gpu": "h100-sxm",
            "formats": ["fp8"],
            "save": True,
            "name": "mixtral fp8",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    plan_id = created.json()["id"]
    assert [p["name"] for p in api.get("/api/v1/plans/").json()["results"]] == [
        "mixtral fp8"
    ]
    assert (
        api.get(f"/api/v1/plans/{plan_id}/").json()["report"]["results"][0]["format"]
        == "fp8"
    )
    assert other_api.get(f"/api/v1/plans/{plan_id}/").status_code == 404
    assert other_api.delete(f"/api/v1/plans/{plan_id}/").status_code == 404


def test_a_pasted_config_is_planned(api: Any) -> None:
    config = {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    }
    response = api.post(
        "/api/v1/plans/",
        {"config": config, "gpu": "a10g", "formats": ["fp16"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert 6.6e9 < response.json()["results"][0]["parameters"] < 6.8e9


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": "no-such-model", "gpu": "a100-80gb"}, "model"),
        ({"model": "llama-3-70b", "gpu": "no-such-gpu"}, "gpu"),
        ({"model": "llama-3-70b", "gpu": "a100-80gb", "formats": ["fp7"]}, "formats"),
        ({"model": "llama-3-70b", "gpu": "a100-80gb", "context": 0}, "context"),
        (
            {"model": "llama-3-70b", "gpu": "a100-80gb", "concurrency": -1},
            "concurrency",
        ),
        ({"config": {"model_type": "llama"}, "gpu": "a100-80gb"}, "config"),
        (
            {"config": {"model_type": "llama", "hidden_size": -5}, "gpu": "a100-80gb"},
            "config",
        ),
        ({"config": [1, 2, 3], "gpu": "a100-80gb"}, "config"),
        ({"gpu": "a100-80gb"}, "model"),
    ],
)
def test_bad_plan_input_is_a_400_naming_the_field(
    api: Any, payload: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/plans/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_a_deeply_nested_config_is_a_400(api: Any) -> None:
    nested: Any = {}
    for _ in range(200):
        nested = {"a": nested}
    response = api.post(
        "/api/v1/plans/", {"config": nested, "gpu": "a100-80gb"}, format="json"
    )
    assert response.status_code == 400


def test_a_10_mb_body_is_refused_with_413_or_400(api: Any) -> None:
    body = json.dumps({"config": {"x": "a" * 10_000_000}, "gpu": "a100-80gb"})
    response = api.generic(
        "POST", "/api/v1/plans/", body, content_type="application/json"
    )
    assert response.status_code in (400, 413)
    assert response.json()["detail"]


@pytest.mark.parametrize("kind", ["models", "gpus", "formats", "api-prices"])
def test_catalog_lists_have_ids(api: Any, kind: str) -> None:
    entries = api.get(f"/api/v1/catalog/{kind}/").json()
    assert len(entries) >= 8
    assert all(isinstance(e["id"], str) and e["id"] for e in entries)


def test_catalog_sizes_meet_the_brief(api: Any) -> None:
    assert len(api.get("/api/v1/catalog/models/").json()) >= 25
    assert len(api.get("/api/v1/catalog/gpus/").json()) >= 20


def test_each_plan_input_binds_its_own_fields_and_keeps_its_own_errors() -> None:
    from planner.api.serializers import PlanCreateInput

    bad = PlanCreateInput(
        data={"model": "llama-3.1-8b", "gpu": "l4", "formats": ["x" * 65], "context": 0}
    )
    good = PlanCreateInput(
        data={"model": "llama-3.1-8b", "gpu": "l4", "formats": ["gguf-Q8_0"]}
    )
    assert not bad.is_valid()
    assert set(bad.errors) == {"formats", "context"}
    assert good.is_valid(), good.errors
    assert good.validated_data["formats"] == ["gguf-Q8_0"]
    assert set(PlanCreateInput(data=good.initial_data).fields) == set(good.fields)
    # Shallow copies, each bound to its own serializer; the declared ones untouched.
    assert good.fields["formats"] is not bad.fields["formats"]
    assert good.fields["formats"].parent is good
    assert bad.fields["formats"].parent is bad
    assert PlanCreateInput._declared_fields["formats"].parent is None


def test_a_shown_plan_is_the_bytes_drf_would_write_and_honours_indent(
    api: Any, user: Any
) -> None:
    from rest_framework.renderers import JSONRenderer

    from planner import services
    from planner.api.serializers import PlanCreateInput

    body = {
        "model": "llama-3-70b",
        "gpu": "a100-80gb",
        "formats": ["fp16", "gguf-Q4_K_M"],
    }
    response = api.post("/api/v1/plans/", body, format="json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    payload = PlanCreateInput(data=body)
    assert payload.is_valid()
    fresh = services.report_to_dict(
        services.plan_compute(data=payload.to_plan_input(), user=user)
    )
    assert response.content == JSONRenderer().render(fresh)
    pretty = api.post(
        "/api/v1/plans/", body, format="json", HTTP_ACCEPT="application/json; indent=2"
    )
    assert pretty.content.startswith(b'{\n  "model"')
    assert json.loads(pretty.content) == fresh
