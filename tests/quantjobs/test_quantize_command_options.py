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
