"""Artifacts on disk: the one module that publishes them (hashed once, checked
against the size the backend reported, moved into place atomically, recorded with
their result) and deletes them as a whole."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from quantjobs.backends.base import sha256_file
from quantjobs.models import Artifact, Job, JobResult, ModelUpload

logger = logging.getLogger(__name__)


class ArtifactCheckFailed(Exception):
    """The file the backend wrote is not the file it described."""


def artifact_root() -> Path:
    """Where published artifacts live."""
    return Path(settings.QUANTPLAN_ARTIFACT_ROOT)


def artifact_abspath(artifact: Artifact) -> Path:
    """The absolute path of an artifact's file."""
    return artifact_root() / artifact.path


def _filename_for(job: Job, fmt: str, temp_path: Path) -> str:
    stem = job.source_ref.rsplit("/", 1)[-1].removesuffix(".gguf") or "model"
    suffix = "".join(temp_path.suffixes[-1:]) or ".bin"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{stem}-{fmt}")
    return f"{safe[:180]}{suffix}"


def _move_atomically(source: Path, final: Path) -> None:
    """Rename into place; across filesystems, copy beside the target first, then rename."""
    try:
        os.replace(source, final)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    staging = final.with_name(f".{final.name}.partial")
    try:
        with source.open("rb") as src, staging.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(staging, final)
    finally:
        staging.unlink(missing_ok=True)
    source.unlink(missing_ok=True)


def publish_artifact(
    *,
    job: Job,
    fmt: str,
    temp_path: Path,
    sha256: str | None,
    size_bytes: int | None,
) -> Artifact:
    """Move a finished file into the store and create its row.

    Each file is hashed once: a digest the backend made of this very file (the GGUF
    backend hashes what it has just verified) is recorded as it is, and a file it
    did not hash is hashed here. A file whose size is not the one the backend
    reported is refused, since it is not the file the backend described.
    """
    actual_bytes = temp_path.stat().st_size
    if size_bytes is not None and actual_bytes != size_bytes:
        raise ArtifactCheckFailed(
            f"{temp_path.name}: {actual_bytes} bytes, not the {size_bytes} the "
            "backend reported"
        )
    digest = sha256 or sha256_file(temp_path)
    artifact_id = uuid.uuid4()
    filename = _filename_for(job, fmt, temp_path)
    relative = Path(str(job.user_id)) / str(artifact_id) / filename
    final = artifact_root() / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        _move_atomically(temp_path, final)
    except OSError:
        shutil.rmtree(final.parent, ignore_errors=True)
        raise
    try:
        return Artifact.objects.create(
            id=artifact_id,
            user_id=job.user_id,
            job=job,
            format=fmt,
            filename=filename,
            path=str(relative),
            size_bytes=final.stat().st_size,
            sha256=digest,
            content_type="application/x-tar"
            if filename.endswith(".tar")
            else "application/octet-stream",
        )
    except Exception:
        final.unlink(missing_ok=True)
        raise


def publish_result(*, job: Job, event: dict[str, Any]) -> JobResult:
    """Publish the artifact of one ``result`` event of the child and record its
    measurements; a format published before (by a lost attempt) is replaced."""
    from quantjobs.projections import (
        device_projection_for,
        fingerprint_of_worker,
        projection_for,
    )

    work_root = Path(settings.QUANTPLAN_WORK_ROOT).resolve()
    source = Path(str(event["artifact_path"])).resolve()
    if work_root not in source.parents:
        raise RuntimeError(f"artifact outside the work directory: {source}")
    fmt = str(event["format"])
    for old in Artifact.objects.filter(job=job, format=fmt):
        delete_artifact(old)
    with transaction.atomic():
        artifact = publish_artifact(
            job=job,
            fmt=fmt,
            temp_path=source,
            sha256=str(event["sha256"]) if event.get("sha256") else None,
            size_bytes=_int_or_none(event.get("size_bytes")),
        )
        meta = event.get("metadata") or {}
        result, _ = JobResult.objects.update_or_create(
            job=job,
            format=fmt,
            defaults={
                "artifact": artifact,
                "metrics": {
                    **event.get("metrics", {}),
                    "artifact_kind": event.get("artifact_kind"),
                    "metadata": meta,
                    "reference": event.get("reference"),
                },
                "projection": {
                    **projection_for(job, fmt),
                    **device_projection_for(
                        job,
                        fmt,
                        fingerprint_of_worker(job.worker),
                        (event.get("metrics") or {}).get("serving") or {},
                    ),
                },
            },
        )
    _record_calibration(result)
    return result


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _record_calibration(result: JobResult) -> None:
    # The ledger learns from the result; it must never cost the user the result.
    from quantjobs.calibration import calibration_record_result

    try:
        calibration_record_result(result=result)
    except Exception:
        logger.warning("calibration ledger: %s not recorded", result, exc_info=True)


def delete_artifact(artifact: Artifact) -> None:
    """Remove an artifact's file, its folder and its row."""
    path = artifact_abspath(artifact)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass
    artifact.delete()


def storage_used_bytes(*, user_id: int) -> int:
    """Bytes a user holds: artifacts and uploaded models (as stored, unpacked)."""
    artifacts = Artifact.objects.filter(user_id=user_id).aggregate(
        total=Sum("size_bytes")
    )
    uploads = ModelUpload.objects.filter(user_id=user_id).aggregate(
        total=Sum("size_bytes")
    )
    return int(artifacts["total"] or 0) + int(uploads["total"] or 0)
