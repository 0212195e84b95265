"""Storing files users upload: evaluation texts now, model files too."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile


class UploadError(ValueError):
    """An uploaded file that cannot be used; the message says why and what to do."""


def _user_dir(user_id: int, kind: str) -> Path:
    path = Path(settings.QUANTPLAN_UPLOAD_ROOT) / str(user_id) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def eval_text_store(*, user_id: int, uploaded: UploadedFile) -> tuple[str, str]:
    """Validate an evaluation file (.txt or .jsonl) and keep it; returns (path, name)."""
    from quantjobs.evaltext import EvalTextError, parse_eval_file

    name = Path(uploaded.name or "eval.txt").name
    suffix = Path(name).suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise UploadError(f"{name}: evaluation text must be a .txt or .jsonl file.")
    if uploaded.size and uploaded.size > settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES:
        limit_mb = settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES / 1e6
        raise UploadError(f"{name}: evaluation text is limited to {limit_mb:.0f} MB.")
    dest = _user_dir(user_id, "eval") / f"{uuid.uuid4()}{suffix}"
    with dest.open("wb") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
    try:
        parse_eval_file(name, dest.read_bytes())
    except EvalTextError as exc:
        dest.unlink(missing_ok=True)
        raise UploadError(f"{name}: {exc}") from None
    return str(dest), name
