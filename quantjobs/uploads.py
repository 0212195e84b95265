"""Storing files users upload: evaluation texts, and model files checked on a worker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile


class UploadError(ValueError):
    """An uploaded file that cannot be used; the message says why and what to do."""


def _user_dir(user_id: int, kind: str) -> Path:
    path = Path(settings.QUANTPLAN_UPLOAD_ROOT) / str(user_id) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def eval_text_store(*, user_id: int, uploaded: File) -> tuple[str, str]:
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
    """Keep an uploaded model's bytes and queue its check; the row shows CHECKING.

    Only what is cheap is decided here (the kind of file, its size against the
    upload limit and the user's storage quota); the content is checked by a job on
    the cpu queue (``model_upload_check``), never in the web request.
    """
    import hashlib
    import shutil

    from quantjobs.artifacts import storage_used_bytes
    from quantjobs.broker import (
        BROKER_DOWN_MESSAGE,
        BrokerUnavailable,
        broker_ping,
        upload_check_enqueue,
    )
    from quantjobs.models import ModelUpload

    name = Path(uploaded.name or "model").name[:200]
    suffix = _suffix(name)
    _refuse_kind(name, suffix)
    if uploaded.size and uploaded.size > settings.QUANTPLAN_MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name}: uploads are limited to {settings.QUANTPLAN_MAX_UPLOAD_BYTES / 1e9:.1f} GB."
        )
    used = storage_used_bytes(user_id=user_id)
    if used + (uploaded.size or 0) > settings.QUANTPLAN_MAX_STORAGE_BYTES:
        raise UploadError(
            f"{name}: your artifacts and uploads use {used / 1e9:.2f} GB of your "
            f"{settings.QUANTPLAN_MAX_STORAGE_BYTES / 1e9:.1f} GB; delete some first."
        )
    ok, _reason = broker_ping()
    if not ok:
        raise BrokerUnavailable(BROKER_DOWN_MESSAGE)
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
        upload = ModelUpload.objects.create(
            id=upload_id,
            user_id=user_id,
            filename=name,
            # Until the check reads the model's own name from the file.
            name=(Path(name).stem if suffix == ".gguf" else _archive_stem(name))[:200],
            kind=ModelUpload.Kind.GGUF if suffix == ".gguf" else ModelUpload.Kind.HF,
            path=str(stored.relative_to(settings.QUANTPLAN_UPLOAD_ROOT)),
            size_bytes=stored.stat().st_size,
            sha256=digest.hexdigest(),
            status=ModelUpload.Status.CHECKING,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    upload_check_enqueue(upload)
    return upload


def _upload_folder(upload: Any) -> Path:
    return (
        Path(settings.QUANTPLAN_UPLOAD_ROOT)
        / str(upload.user_id)
        / "models"
        / str(upload.pk)
    )


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def model_upload_check(*, upload_id: str) -> None:
    """Check an upload in a limited child process: READY, or REFUSED with the reason
    and nothing left on disk. Runs on a worker (the ``check_upload`` task)."""
    import shutil

    from django.db.models import Sum
    from django.utils import timezone

    from quantjobs.models import ModelUpload

    upload = ModelUpload.objects.filter(
        pk=upload_id, status=ModelUpload.Status.CHECKING
    ).first()
    if upload is None:
        return  # deleted, or already checked (a redelivered message)
    folder = _upload_folder(upload)
    stored = Path(settings.QUANTPLAN_UPLOAD_ROOT) / upload.path
    try:
        if upload.kind == ModelUpload.Kind.GGUF:
            fields = _check_gguf(stored)
        else:
            others = ModelUpload.objects.filter(user_id=upload.user_id).exclude(
                pk=upload.pk
            )
            from quantjobs.models import Artifact

            used = int(others.aggregate(t=Sum("size_bytes"))["t"] or 0) + int(
                Artifact.objects.filter(user_id=upload.user_id).aggregate(
                    t=Sum("size_bytes")
                )["t"]
                or 0
            )
            fields = _check_archive(stored, folder / "model", used_bytes=used)
    except UploadError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        ModelUpload.objects.filter(pk=upload.pk).update(
            status=ModelUpload.Status.REFUSED,
            reason=str(exc)[:4000],
            size_bytes=0,
            checked_at=timezone.now(),
        )
        return
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        ModelUpload.objects.filter(pk=upload.pk).update(
            status=ModelUpload.Status.REFUSED,
            reason="The upload could not be checked (an internal error); upload it "
            "again, and tell the operator if it happens again.",
            size_bytes=0,
            checked_at=timezone.now(),
        )
        raise
    ModelUpload.objects.filter(pk=upload.pk).update(
        status=ModelUpload.Status.READY, checked_at=timezone.now(), **fields
    )


def model_uploads_expire_unchecked(*, older_than_s: float) -> int:
    """Refuse uploads no worker checked in time (their message lost, or no cpu
    worker running), so that none holds its owner's storage quota for ever."""
    import shutil
    from datetime import timedelta

    from django.utils import timezone

    from quantjobs.models import ModelUpload

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    expired = 0
    for upload in ModelUpload.objects.filter(
        status=ModelUpload.Status.CHECKING, created_at__lt=cutoff
    ):
        refused = ModelUpload.objects.filter(
            pk=upload.pk, status=ModelUpload.Status.CHECKING
        ).update(
            status=ModelUpload.Status.REFUSED,
            reason=f"No worker checked it within {older_than_s / 60:.0f} minutes; "
            "upload it again once a cpu worker runs.",
            size_bytes=0,
            checked_at=timezone.now(),
        )
        if refused:
            shutil.rmtree(_upload_folder(upload), ignore_errors=True)
            expired += 1
    return expired


def _check_gguf(stored: Path) -> dict[str, Any]:
    from quantjobs.backends.base import BackendError
    from quantjobs.backends.gguf_inspect import inspect_gguf
    from quantjobs.modelspec import spec_from_gguf_infos

    try:
        info = inspect_gguf(stored, llama_check=True)
    except BackendError as exc:
        raise UploadError(f"{stored.name}: {exc}") from None
    model_name = info.name or stored.stem
    return {
        "name": model_name[:200],
        "model_spec": _upload_spec(
            lambda: spec_from_gguf_infos(
                [stored], [info], model_id=model_name, name=model_name
            ),
            source="gguf metadata",
        ),
        "summary": {
            "architecture": info.architecture,
            "file_type": info.file_type_name,
            "parameter_count": info.parameter_count,
            "tensor_count": info.tensor_count,
        },
    }


def _check_archive(stored: Path, dest: Path, *, used_bytes: int) -> dict[str, Any]:
    """Unpack within the limits (the user's remaining storage and the hard cap, the
    compression ratio, the file count) and check the model directory."""
    import json
    import subprocess
    import sys

    remaining = settings.QUANTPLAN_MAX_STORAGE_BYTES - used_bytes
    max_bytes = max(0, min(settings.QUANTPLAN_MAX_UNPACKED_BYTES, remaining))
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "quantjobs.backends.upload_check",
                str(stored),
                str(dest),
                str(max_bytes),
                str(settings.QUANTPLAN_UPLOAD_MAX_RATIO),
                str(settings.QUANTPLAN_UPLOAD_MAX_FILES),
            ],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            cwd=str(settings.BASE_DIR),
        )
    except subprocess.TimeoutExpired:
        raise UploadError(
            f"{stored.name}: checking the archive took too long."
        ) from None
    lines = done.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    if not verdict.get("ok"):
        message = verdict.get("message") or (
            f"the archive could not be checked (exit code {done.returncode})."
        )
        if (
            verdict.get("limit") == "size"
            and remaining < settings.QUANTPLAN_MAX_UNPACKED_BYTES
        ):
            message += (
                f" Your storage quota leaves {max(0, remaining) / 1e9:.2f} GB; delete "
                "artifacts or uploads first."
            )
        raise UploadError(f"{stored.name}: {message}")
    from quantjobs.modelspec import (
        ModelSpecError,
        model_name_from_config,
        read_config,
        spec_from_hf_dir,
    )

    stored.unlink()
    root = Path(verdict["root"])
    try:
        model_name = model_name_from_config(read_config(root), root.name)
    except ModelSpecError:
        model_name = _archive_stem(stored.name)
    return {
        "name": model_name[:200],
        "model_spec": _upload_spec(
            lambda: spec_from_hf_dir(root, model_id=model_name), source="config.json"
        ),
        "path": str(root.relative_to(settings.QUANTPLAN_UPLOAD_ROOT)),
        "size_bytes": _tree_bytes(dest),
        "summary": {
            "model_type": verdict["model_type"],
            "parameter_count": verdict["parameter_count"],
            "weight_bytes": verdict["weight_bytes"],
        },
    }


def _archive_stem(name: str) -> str:
    suffix = _suffix(name)
    return name[: -len(suffix)] if suffix and name.lower().endswith(suffix) else name


def _upload_spec(build: Callable[[], Any], *, source: str) -> dict[str, Any]:
    """The upload's spec as JSON, or why it has none (the file stays usable)."""
    from quantjobs.modelspec import ModelSpecError, spec_to_json

    try:
        return dict(spec_to_json(build(), source=source))
    except ModelSpecError as exc:
        return {"error": str(exc)}


def model_upload_delete(*, upload: Any) -> None:
    """Remove an upload's files and its row."""
    import shutil

    shutil.rmtree(_upload_folder(upload), ignore_errors=True)
    upload.delete()
