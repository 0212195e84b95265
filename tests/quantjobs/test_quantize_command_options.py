"""The quantize command's measurement options: refused with a reason when out of range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--bench-repetitions", "100"],
            "--bench-repetitions must be between 1 and 50",
        ),
        (["--bench-prompt-tokens", "9000"], "--bench-prompt-tokens must be between"),
    ],
)
def test_out_of_range_speed_settings_are_refused(
    user: Any, args: list[str], reason: str
) -> None:
    with pytest.raises(CommandError, match=reason):
        call_command(
            "quantize", "--source", "sample", "--method", "gguf", "--type", "Q8_0",
            "--user", user.username, *args,
        )  # fmt: skip


def test_an_empty_calibration_file_is_refused(user: Any, tmp_path: Path) -> None:
    empty = tmp_path / "calib.txt"
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match="calib.txt is empty"):
        call_command(
            "quantize", "--source", "sample", "--method", "gguf", "--type", "Q4_K_M",
            "--user", user.username, "--calibration-file", str(empty),
        )  # fmt: skip


def test_search_without_a_bar_is_refused(user: Any) -> None:
    with pytest.raises(CommandError, match="--search needs a bar"):
        call_command(
            "quantize", "--source", "sample", "--search", "--user", user.username,
        )  # fmt: skip


def test_a_bar_without_search_is_refused(user: Any) -> None:
    with pytest.raises(CommandError, match="only applies with --search"):
        call_command(
            "quantize", "--source", "sample", "--type", "Q8_0",
            "--max-kld", "0.05", "--user", user.username,
        )  # fmt: skip


def test_a_negative_bar_is_refused_with_the_reason(user: Any, redis_url: str) -> None:
    with pytest.raises(CommandError, match="cannot be negative"):
        call_command(
            "quantize", "--source", "sample", "--search",
            "--max-ppl-change-pct", "-3", "--user", user.username,
        )  # fmt: skip


def test_a_search_is_created_with_its_candidates_smallest_first(
    user: Any, redis_url: str, capsys: Any
) -> None:
    import json

    call_command(
        "quantize", "--source", "sample", "--search", "--max-ppl-change-pct", "3",
        "--type", "Q8_0", "--type", "Q4_K_M", "--json", "--user", user.username,
    )  # fmt: skip
    body = json.loads(capsys.readouterr().out)
    assert body["formats"] == ["gguf-Q4_K_M", "gguf-Q8_0"]
    assert body["search"]["label"] == "perplexity change ≤ 3%"
