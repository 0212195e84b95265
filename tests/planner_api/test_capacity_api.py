"""``/api/v1/capacity/`` and its CLI twin ``manage.py plan --requests-per-s``."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

ISSUE_REQUEST = {
    "model": "llama-3-70b",
    "gpus": ["a100-80gb", "h100-sxm", "l40s"],
    "requests_per_s": 2,
    "prompt_tokens": 1000,
    "output_tokens": 300,
    "max_ttft_s": 1,
    "min_tokens_per_s": 30,
}


def test_capacity_returns_recommendation_candidates_and_assumptions(api: Any) -> None:
    response = api.post("/api/v1/capacity/", ISSUE_REQUEST, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    rec = body["recommendation"]
    assert rec["gpu"] in ISSUE_REQUEST["gpus"]
    assert rec["load"]["ttft_p95_s"] <= 1
    assert rec["load"]["tokens_per_s_per_user"] >= 30
    assert rec["usd_per_month"] > 0 and rec["usd_per_million_tokens"] > 0
    assert body["candidates"][0]["usd_per_month"] == rec["usd_per_month"]
    assert body["assumptions"] and body["curve"]
    assert body["verdict"]["cheaper"] in ("api", "self-hosted")


def test_the_cli_prints_the_same_report_as_the_api(api: Any) -> None:
    out = StringIO()
    call_command(
        "plan",
        "--model",
        "llama-3-70b",
        "--gpu",
        "a100-80gb",
        "--gpu",
        "h100-sxm",
        "--gpu",
        "l40s",
        "--requests-per-s",
        "2",
        "--prompt-tokens",
        "1000",
        "--output-tokens",
        "300",
        "--max-ttft-s",
        "1",
        "--min-tokens-per-s",
        "30",
        "--json",
        stdout=out,
    )
    cli = json.loads(out.getvalue())
    body = api.post("/api/v1/capacity/", ISSUE_REQUEST, format="json").json()
    assert cli["recommendation"] == body["recommendation"]
    assert cli["candidates"] == body["candidates"]
    assert cli["assumptions"] == body["assumptions"]


@pytest.mark.parametrize(
    "change,field,text",
    [
        ({"requests_per_s": None}, "requests_per_s", "traffic"),
        ({"gpus": ["h100-sxn"]}, "gpu", "h100-sxm"),
        ({"model": "nope-70b"}, "model", "unknown model"),
        ({"requests_per_s": -1}, "requests_per_s", "greater than or equal"),
        ({"formats": ["q4"]}, "formats", ""),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api: Any, change: dict[str, Any], field: str, text: str
) -> None:
    payload = {**ISSUE_REQUEST, **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = api.post("/api/v1/capacity/", payload, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in json.dumps(errors)
    assert text in json.dumps(errors)


def test_unmeetable_targets_answer_200_with_the_closest_configuration(
    api: Any,
) -> None:
    body = api.post(
        "/api/v1/capacity/", {**ISSUE_REQUEST, "max_ttft_s": 0.001}, format="json"
    ).json()
    assert body["recommendation"] is None
    assert body["closest"]["label"] in body["why_none"]


def test_a_context_beyond_the_window_answers_with_the_window(api: Any) -> None:
    body = api.post(
        "/api/v1/capacity/",
        {**ISSUE_REQUEST, "prompt_tokens": 20_000},
        format="json",
    ).json()
    assert body["recommendation"] is None
    assert "window" in body["why_none"]


def test_the_cli_refuses_several_gpus_without_a_traffic() -> None:
    with pytest.raises(CommandError, match="traffic"):
        call_command(
            "plan", "--model", "llama-3-70b", "--gpu", "a100-80gb", "--gpu", "l4"
        )


def test_finetune_api_and_cli_agree(api: Any) -> None:
    out = StringIO()
    call_command(
        "plan-finetune",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "a100-80gb",
        "--method",
        "qlora",
        "--seq-len",
        "2048",
        "--micro-batch",
        "4",
        "--json",
        stdout=out,
    )
    cli = json.loads(out.getvalue())
    response = api.post(
        "/api/v1/finetune/",
        {
            "model": "llama-3.1-8b",
            "gpu": "a100-80gb",
            "method": "qlora",
            "seq_len": 2048,
            "micro_batch": 4,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == cli
    assert cli["fits"] is True and cli["usd_per_epoch"] > 0


def test_finetune_api_refuses_a_sequence_beyond_the_window(api: Any) -> None:
    response = api.post(
        "/api/v1/finetune/",
        {"model": "llama-3-8b", "gpu": "a100-80gb", "seq_len": 100_000},
        format="json",
    )
    assert response.status_code == 400
    assert "window" in json.dumps(response.json())


OFFLOAD_REQUEST = {
    "model": "mixtral-8x7b",
    "gpus": ["rtx-4090"],
    "gpu_counts": [1],
    "formats": ["gguf-Q4_K_M"],
    "requests_per_s": 0.05,
    "prompt_tokens": 500,
    "output_tokens": 200,
}


def test_a_partial_offload_recommendation_comes_with_its_flags_in_the_recipes(
    api: Any,
) -> None:
    body = api.post("/api/v1/capacity/", OFFLOAD_REQUEST, format="json").json()
    rec = body["recommendation"]
    assert rec["llama_cpp_flags"].startswith("-ngl 999 --n-cpu-moe ")
    recipes = {r["id"]: r["content"] for r in body["recipes"]}
    cpu_moe = rec["llama_cpp_flags"].split()[-1]
    assert f"--n-cpu-moe {cpu_moe}" in recipes["llama-server"]
    assert (
        "--n-cpu-moe" in recipes["compose"] and "--n-cpu-moe" in recipes["kubernetes"]
    )
    assert "llama-cpp-python" not in recipes  # it cannot keep experts in RAM
    out = StringIO()
    call_command(
        "plan",
        "--model",
        "mixtral-8x7b",
        "--gpu",
        "rtx-4090",
        "--gpus",
        "1",
        "--format",
        "gguf-Q4_K_M",
        "--requests-per-s",
        "0.05",
        "--prompt-tokens",
        "500",
        "--output-tokens",
        "200",
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["recipes"] == body["recipes"]


def test_owning_takes_an_electricity_price_and_refuses_a_negative_one(
    api: Any,
) -> None:
    owned = {**ISSUE_REQUEST, "gpus": ["h100-sxm"], "provider": "owned"}
    cheap = api.post(
        "/api/v1/capacity/", {**owned, "electricity_usd_per_kwh": 0.05}, format="json"
    ).json()
    dear = api.post(
        "/api/v1/capacity/", {**owned, "electricity_usd_per_kwh": 0.50}, format="json"
    ).json()
    assert "0.05 USD/kWh" in cheap["recommendation"]["price_source"]
    assert (
        dear["recommendation"]["usd_per_gpu_hour"]
        > cheap["recommendation"]["usd_per_gpu_hour"]
    )
    bad = api.post(
        "/api/v1/capacity/", {**owned, "electricity_usd_per_kwh": -1}, format="json"
    )
    assert bad.status_code == 400 and "electricity_usd_per_kwh" in bad.content.decode()
