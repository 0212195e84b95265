"""Resumable browser uploads over the tus 1.0 protocol (core + creation extension,
https://tus.io/protocols/resumable-upload): create an upload, ask its offset, append
bytes at that offset. When the last byte arrives the file goes through the same
checks as any upload (``model_upload_store``) and becomes a ModelUpload.

The browser side is the tus project's own client (tus-js-client, vendored in
frontend/static); this module holds the server's rules, the views only translate HTTP.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.utils import timezone

from quantjobs.broker import BrokerUnavailable
from quantjobs.models import TusUpload
from quantjobs.uploads import UploadError, model_upload_store

TUS_VERSION = "1.0.0"
READ_BYTES = 1024 * 1024


class TusError(Exception):
    """A request the protocol refuses: ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_metadata(header: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated 'key base64value' pairs."""
    out: dict[str, str] = {}
    for part in (header or "").split(","):
        bits = part.strip().split(" ", 1)
        if not bits[0]:
            continue
        try:
            value = base64.b64decode(bits[1]).decode() if len(bits) > 1 else ""
        except (ValueError, UnicodeDecodeError):
            raise TusError(
                f"Upload-Metadata: the value of {bits[0]!r} is not base64 text.",
                status=400,
            ) from None
        out[bits[0]] = value
    return out


def _abspath(upload: TusUpload) -> Path:
    return Path(settings.QUANTPLAN_UPLOAD_ROOT) / upload.path


def tus_create(
    *, user: AbstractBaseUser, length_bytes: int | None, metadata: dict[str, str]
) -> TusUpload:
    """Start an upload of a known length; the name comes from the 'filename' metadata."""
    from quantjobs.services import QuotaExceeded, upload_check_room

    try:
        upload_check_room(user=user)
    except QuotaExceeded as exc:
        raise TusError(str(exc), status=429) from None
    limit = settings.QUANTPLAN_MAX_UPLOAD_BYTES
    if length_bytes is None or length_bytes < 1:
        raise TusError(
            "Upload-Length: give the file's size in bytes (1 or more).", status=400
        )
    if length_bytes > limit:
        raise TusError(f"Uploads are limited to {limit / 1e9:.1f} GB.", status=413)
    name = Path(metadata.get("filename") or "model").name[:200] or "model"
    upload = TusUpload(user=user, filename=name, length_bytes=length_bytes)
    folder = Path(settings.QUANTPLAN_UPLOAD_ROOT) / str(user.pk) / "partial"
    folder.mkdir(parents=True, exist_ok=True)
    upload.path = str(
        (folder / str(upload.pk)).relative_to(settings.QUANTPLAN_UPLOAD_ROOT)
    )
    _abspath(upload).touch()
    upload.save()
    return upload


def tus_append(
    *, upload: TusUpload, offset_bytes: int | None, stream: IO[bytes]
) -> TusUpload:
    """Write the request body at ``offset_bytes`` (which must be where the file ends).

    Bytes are counted as they are written, so a connection that drops half-way keeps
    what arrived and the client resumes from there.
    """
    if upload.result_id or upload.error:
        raise TusError("This upload is complete.", status=403)
    if offset_bytes is None or offset_bytes != upload.offset_bytes:
        raise TusError(
            f"Upload-Offset must be {upload.offset_bytes}, where the upload stands.",
            status=409,
        )
    remaining = upload.length_bytes - upload.offset_bytes
    written = 0
    try:
        with _abspath(upload).open("r+b") as handle:
            handle.seek(upload.offset_bytes)
            while written < remaining:
                chunk = stream.read(min(READ_BYTES, remaining - written))
                if not chunk:
                    break
                handle.write(chunk)
                written += len(chunk)
    finally:
        upload.offset_bytes += written
        upload.updated_at = timezone.now()
        upload.save(update_fields=["offset_bytes", "updated_at"])
    if stream.read(1):
        raise TusError("The body goes past Upload-Length.", status=400)
    if upload.offset_bytes == upload.length_bytes:
        _finish(upload)
    return upload


def _finish(upload: TusUpload) -> None:
    """Check the complete file like any upload; keep the result or the reason."""
    path = _abspath(upload)
    try:
        with path.open("rb") as handle:
            stored = model_upload_store(
                user_id=upload.user_id, uploaded=File(handle, name=upload.filename)
            )
    except (UploadError, BrokerUnavailable) as exc:
        upload.error = str(exc)
    else:
        upload.result = stored
    finally:
        path.unlink(missing_ok=True)
    upload.save(update_fields=["result", "error"])


def tus_delete(*, upload: TusUpload) -> None:
    """Abandon an upload (tus termination): its partial file goes too."""
    _abspath(upload).unlink(missing_ok=True)
    upload.delete()


def tus_status(upload: TusUpload) -> dict[str, Any]:
    """Where an upload stands, for the page that follows it."""
    return {
        "id": str(upload.pk),
        "filename": upload.filename,
        "offset_bytes": upload.offset_bytes,
        "length_bytes": upload.length_bytes,
        "complete": upload.offset_bytes == upload.length_bytes,
        "upload_id": str(upload.result_id) if upload.result_id else None,
        "error": upload.error,
    }
