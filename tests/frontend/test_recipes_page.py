"""Plan and job pages show the serving recipes of the chosen format."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_a_saved_plan_shows_recipes_for_the_chosen_format(
    client: Any, api: Any, user: Any
) -> None:
    plan = api.post(
        "/api/v1/plans/",
        {
            "model": "llama-3.1-8b",
            "gpu": "l4",
            "formats": ["gguf-Q4_K_M", "awq-4bit-g128"],
            "save": True,
        },
        format="json",
    ).json()
    client.force_login(user)
    html = client.get(
        f"/plans/{plan['id']}/?recipe_format=gguf-Q4_K_M"
    ).content.decode()
    assert "Serve it" in html
    assert "llama-server" in html
    html = client.get(
        f"/plans/{plan['id']}/?recipe_format=awq-4bit-g128"
    ).content.decode()
    assert "vllm serve" in html
    html = client.get(f"/plans/{plan['id']}/?recipe_format=fp7").content.decode()
    assert "Serve it" in html and "Traceback" not in html
