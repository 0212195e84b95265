"""The capacity page, through Django's test client (server-rendered, no JavaScript)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db

ISSUE_FORM = {
    "model": "llama-3-70b",
    "gpus": ["a100-80gb", "h100-sxm", "l40s"],
    "requests_per_s": "2",
    "prompt_tokens": "1000",
    "output_tokens": "300",
    "hours_per_day": "24",
    "max_ttft_s": "1",
    "min_tokens_per_s": "30",
}


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def test_the_capacity_page_answers_with_curves_verdict_and_a_row_per_gpu_type(
    logged_in: Any,
) -> None:
    response = logged_in.post("/capacity/", ISSUE_FORM)
    assert response.status_code == 200
    html = response.content.decode()
    assert "replica(s) of" in html
    assert html.count("<svg") == 3
    assert "Time to first token, p95" in html
    assert 'id="verdict"' in html and "cheaper by" in html
    for name in ("A100 80GB", "H100 SXM5", "L40S"):
        assert name in html


def test_unmeetable_targets_name_the_closest_configuration(logged_in: Any) -> None:
    html = logged_in.post(
        "/capacity/", {**ISSUE_FORM, "max_ttft_s": "0.001"}
    ).content.decode()
    assert "no configuration meets the targets; the closest is" in html


def test_an_unknown_model_is_an_error_on_the_model_field(logged_in: Any) -> None:
    response = logged_in.post("/capacity/", {**ISSUE_FORM, "model": "nope-70b"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="field-model"' in html and "unknown model" in html
    assert "has-error" in html


def test_the_page_links_from_the_navigation(logged_in: Any) -> None:
    html = logged_in.get("/capacity/").content.decode()
    assert 'href="/capacity/"' in html and 'aria-current="page"' in html


def test_the_finetune_page_breaks_memory_down_and_says_when_it_does_not_fit(
    logged_in: Any,
) -> None:
    form = {
        "model": "llama-3.1-8b",
        "gpu": "a100-80gb",
        "gpus": "1",
        "method": "qlora",
        "seq_len": "2048",
        "micro_batch": "1",
        "lora_rank": "16",
        "target_modules": ["q_proj", "v_proj"],
        "optimizer": "adamw",
        "gradient_checkpointing": "on",
        "dataset_tokens": "1000000",
    }
    html = logged_in.post("/finetune/", form).content.decode()
    assert "Fits:" in html and "Optimizer states" in html and "Loss (logits)" in html
    html = logged_in.post("/finetune/", {**form, "method": "full"}).content.decode()
    assert "Does not fit" in html and "QLoRA" in html
    html = logged_in.post("/finetune/", {**form, "seq_len": "999999"}).content.decode()
    assert "window" in html


def test_a_partial_offload_answer_shows_its_llama_server_flags(logged_in: Any) -> None:
    html = logged_in.post(
        "/capacity/",
        {
            "model": "mixtral-8x7b",
            "gpus": ["rtx-4090"],
            "requests_per_s": "0.05",
            "prompt_tokens": "500",
            "output_tokens": "200",
            "hours_per_day": "24",
        },
    ).content.decode()
    assert 'id="capacity-recipes"' in html, html[-3000:]
    assert "--n-cpu-moe" in html and "-ngl 999" in html
