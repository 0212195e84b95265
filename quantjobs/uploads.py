"""Storing files users upload: evaluation texts now, model files too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        limit_mib = settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES / 1024**2
        raise UploadError(
            f"{name}: evaluation text is limited to {limit_mib:g} MiB; send a shorter "
            "sample of your task."
        )
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


def calibration_text_store(*, user_id: int, uploaded: UploadedFile) -> tuple[str, str]:
    """Validate a calibration text (.txt) and keep it; returns (path, name)."""
    from quantjobs.evaltext import EvalTextError, parse_calibration_text

    name = Path(uploaded.name or "calibration.txt").name
    if Path(name).suffix.lower() != ".txt":
        raise UploadError(f"{name}: calibration text must be a .txt file.")
    if uploaded.size and uploaded.size > settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES:
        limit_mb = settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES / 1e6
        raise UploadError(f"{name}: calibration text is limited to {limit_mb:.0f} MB.")
    dest = _user_dir(user_id, "calibration") / f"{uuid.uuid4()}.txt"
    with dest.open("wb") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
    try:
        parse_calibration_text(dest.read_bytes(), name)
    except EvalTextError as exc:
        dest.unlink(missing_ok=True)
        raise UploadError(str(exc)) from None
    return str(dest), name


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
CHECK_TIMEOUT_S = 120


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (
        ".tar.gz",
        *ARCHIVE_SUFFIXES,
        ".gguf",
        ".safetensors",
        *PICKLE_SUFFIXES,
    ):
        if lower.endswith(suffix):
            return suffix
    return Path(lower).suffix


def _refuse_kind(name: str, suffix: str) -> None:
    if suffix in PICKLE_SUFFIXES:
        raise UploadError(
            f"{name}: pickle-based model files (.bin, .pt, .pth) can run arbitrary code "
            "when loaded, so Quantplan refuses them. Convert the weights to "
            ".safetensors (or GGUF) and upload that instead."
        )
    if suffix == ".safetensors":
        raise UploadError(
            f"{name}: a single .safetensors file is not a whole model. Upload a .tar or "
            ".zip of the model directory (config.json, tokenizer files, *.safetensors)."
        )
    if suffix not in (".gguf", *ARCHIVE_SUFFIXES):
        raise UploadError(
            f"{name}: upload a .gguf file, or a .tar/.zip of a Hugging Face model "
            "directory with .safetensors weights."
        )


def model_upload_store(*, user_id: int, uploaded: UploadedFile) -> Any:
    """Check an uploaded model in a limited child process, keep it, record it."""
    import hashlib
    import json
    import shutil
    import subprocess
    import sys

    from quantjobs.backends.base import BackendError
    from quantjobs.models import ModelUpload
    from quantjobs.modelspec import (
        ModelSpecError,
        model_name_from_config,
        read_config,
        spec_from_gguf_infos,
        spec_from_hf_dir,
    )

    name = Path(uploaded.name or "model").name[:200]
    suffix = _suffix(name)
    _refuse_kind(name, suffix)
    if uploaded.size and uploaded.size > settings.QUANTPLAN_MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name}: uploads are limited to {settings.QUANTPLAN_MAX_UPLOAD_BYTES / 1e9:.1f} GB."
        )
    upload_id = uuid.uuid4()
    folder = _user_dir(user_id, "models") / str(upload_id)
    folder.mkdir()
    stored = folder / name
    digest = hashlib.sha256()
    try:
        with stored.open("wb") as handle:
            for chunk in uploaded.chunks():
                digest.update(chunk)
                handle.write(chunk)
        size_bytes = stored.stat().st_size
        if suffix == ".gguf":
            from quantjobs.backends.gguf_inspect import inspect_gguf

            try:
                info = inspect_gguf(stored, llama_check=True)
            except BackendError as exc:
                raise UploadError(f"{name}: {exc}") from None
            kind = ModelUpload.Kind.GGUF
            relative = stored.relative_to(settings.QUANTPLAN_UPLOAD_ROOT)
            model_name = info.name or Path(name).stem
            model_spec = _upload_spec(
                lambda: spec_from_gguf_infos(
                    [stored], [info], model_id=model_name, name=model_name
                ),
                source="gguf metadata",
            )
            summary = {
                "architecture": info.architecture,
                "file_type": info.file_type_name,
                "parameter_count": info.parameter_count,
                "tensor_count": info.tensor_count,
            }
        else:
            dest = folder / "model"
            try:
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "quantjobs.backends.upload_check",
                        str(stored),
                        str(dest),
                        str(settings.QUANTPLAN_MAX_UPLOAD_BYTES * 4),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=CHECK_TIMEOUT_S,
                    cwd=str(settings.BASE_DIR),
                )
            except subprocess.TimeoutExpired:
                raise UploadError(
                    f"{name}: checking the archive took too long."
                ) from None
            lines = done.stdout.strip().splitlines()
            verdict = json.loads(lines[-1]) if lines else {}
            if not verdict.get("ok"):
                message = verdict.get("message") or (
                    f"the archive could not be checked (exit code {done.returncode})."
                )
                raise UploadError(f"{name}: {message}")
            stored.unlink()
            kind = ModelUpload.Kind.HF
            relative = Path(verdict["root"]).relative_to(settings.QUANTPLAN_UPLOAD_ROOT)
            root = Path(verdict["root"])
            try:
                model_name = model_name_from_config(read_config(root), root.name)
            except ModelSpecError:
                model_name = _archive_stem(name)
            model_spec = _upload_spec(
                lambda: spec_from_hf_dir(root, model_id=model_name),
                source="config.json",
            )
            summary = {
                "model_type": verdict["model_type"],
                "parameter_count": verdict["parameter_count"],
                "weight_bytes": verdict["weight_bytes"],
            }
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ModelUpload.objects.create(
        id=upload_id,
        user_id=user_id,
        filename=name,
        name=model_name[:200],
        kind=kind,
        path=str(relative),
        size_bytes=size_bytes,
        sha256=digest.hexdigest(),
        summary=summary,
        model_spec=model_spec,
    )


def _archive_stem(name: str) -> str:
    suffix = _suffix(name)
    return name[: -len(suffix)] if suffix and name.lower().endswith(suffix) else name


def _upload_spec(build: Callable[[], Any], *, source: str) -> dict[str, Any]:
    """The upload's spec as JSON, or why it has none (the file stays usable)."""
    from quantjobs.modelspec import ModelSpecError, spec_to_json

    try:
        return spec_to_json(build(), source=source)
    except ModelSpecError as exc:
        return {"error": str(exc)}


def model_upload_delete(*, upload: Any) -> None:
    """Remove an upload's files and its row."""
    import shutil

    folder = (
        Path(settings.QUANTPLAN_UPLOAD_ROOT)
        / str(upload.user_id)
        / "models"
        / str(upload.pk)
    )
    shutil.rmtree(folder, ignore_errors=True)
    upload.delete()
