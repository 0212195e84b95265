"""``manage.py quantize --eval FILE``: the file is stored only for an accepted job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

TEXT = "The quick brown fox jumps over the lazy dog, and then it rests.\n" * 200


def _stored(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()]


def test_an_accepted_job_keeps_its_evaluation_file(
    user: Any, tmp_path: Path, clean_media: Path, redis_url: str
) -> None:
    from quantjobs.models import Job

    text = tmp_path / "mine.txt"
    text.write_text(TEXT)
    call_command(
        "quantize", "--method", "selftest", "--type", "selftest", "--eval", str(text), "--user", "alice",
        "--json",
    )  # fmt: skip

    job = Job.objects.get(user=user)
    assert job.eval_text_name == "mine.txt"
    assert Path(job.eval_text_path).read_text() == TEXT
    assert _stored(clean_media) == [Path(job.eval_text_path)]


def test_a_refused_job_leaves_no_file(
    user: Any, tmp_path: Path, clean_media: Path, redis_url: str
) -> None:
    text = tmp_path / "mine.txt"
    text.write_text(TEXT)
    with pytest.raises(CommandError, match="gguf-Q9_X"):
        call_command(
            "quantize", "--method", "gguf", "--type", "Q9_X", "--eval", str(text),
            "--user", "alice",
        )  # fmt: skip
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "quantize", "--type", "Q8_0", "--eval", str(tmp_path / "none.txt"),
            "--user", "alice",
        )  # fmt: skip

    assert _stored(clean_media) == []
