"""Check an uploaded model archive in a separate, resource-limited process.

Run as ``python -m quantjobs.backends.upload_check ARCHIVE DEST MAX_BYTES
[MAX_RATIO MAX_FILES]``. It extracts a ``.tar`` / ``.tar.gz`` / ``.zip`` of a
Hugging Face model directory into ``DEST`` refusing anything that is not a plain
file or folder inside it (``..`` paths, absolute paths, symlinks, hard links,
devices), within limits on member count, total unpacked size and unpacked size
per packed byte (a zip bomb is refused from its headers, before it is unpacked),
then checks the directory (safetensors headers, no pickle, no
``auto_map``). It prints one JSON line: ``{"ok": true, ...}`` or
``{"ok": false, "message": "..."}``. The parent applies the time limit; this
process sets its own memory and CPU limits before touching the file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from quantjobs.backends.base import BackendError

MAX_MEMBERS = 1_000
MAX_RATIO = 100
MAX_MEMORY_BYTES = 1 << 30
CPU_SECONDS = 120
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def _limit_resources() -> None:
    import resource

    for limit, value in (
        (resource.RLIMIT_AS, MAX_MEMORY_BYTES + (512 << 20)),
        (resource.RLIMIT_CPU, CPU_SECONDS),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")):
        raise BackendError(f"The archive has an unsafe path {name!r}; it was refused.")
    if any(part.startswith("~") or ":" in part for part in path.parts):
        raise BackendError(f"The archive has an unsafe path {name!r}; it was refused.")
    return path


class LimitExceeded(BackendError):
    """The archive unpacks to more than a limit allows."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def _check_totals(
    total: int,
    count: int,
    archive_bytes: int,
    max_bytes: int,
    max_ratio: int,
    max_members: int,
) -> None:
    if count > max_members:
        raise LimitExceeded(
            f"The archive has more than {max_members} entries; a model directory "
            "needs far fewer.",
            limit="files",
        )
    if total > max_bytes:
        raise LimitExceeded(
            f"The archive unpacks to more than {max_bytes / 1e9:.2f} GB, the most "
            "this upload may take.",
            limit="size",
        )
    if total > max_ratio * max(archive_bytes, 1):
        raise LimitExceeded(
            f"The archive unpacks to more than {max_ratio} times its own size; "
            "model weights barely compress, so it was refused as a decompression "
            "bomb.",
            limit="ratio",
        )


def _extract_tar(
    archive: Path, dest: Path, max_bytes: int, max_ratio: int, max_members: int
) -> None:
    packed = archive.stat().st_size
    with tarfile.open(archive, "r:*") as tar:
        members = []
        total = 0
        for index, member in enumerate(tar):
            _safe_name(member.name)
            if member.issym() or member.islnk():
                raise BackendError(
                    f"The archive contains a link ({member.name}); links are refused."
                )
            if not (member.isfile() or member.isdir()):
                raise BackendError(
                    f"The archive contains a special file ({member.name}); refused."
                )
            total += member.size
            # Each header is checked as it is read: a bomb's first header is enough.
            _check_totals(total, index + 1, packed, max_bytes, max_ratio, max_members)
            members.append(member)
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(
    archive: Path, dest: Path, max_bytes: int, max_ratio: int, max_members: int
) -> None:
    packed = archive.stat().st_size
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for index, info in enumerate(infos):
            _safe_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise BackendError(
                    f"The archive contains a link ({info.filename}); links are refused."
                )
            total += info.file_size
            _check_totals(total, index + 1, packed, max_bytes, max_ratio, max_members)
        for info in infos:
            target = dest / _safe_name(info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # zipfile stops at the declared size, so the totals above hold.
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _model_root(dest: Path) -> Path:
    """The folder holding config.json: the archive's root or its single top folder."""
    if (dest / "config.json").is_file():
        return dest
    children = [p for p in dest.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "config.json").is_file():
        return children[0]
    raise BackendError(
        "The archive has no config.json at its top (or in a single top folder): pack "
        "the whole model directory (config.json, tokenizer files, *.safetensors)."
    )


def check_archive(
    archive: Path,
    dest: Path,
    max_bytes: int,
    max_ratio: int = MAX_RATIO,
    max_members: int = MAX_MEMBERS,
) -> dict[str, Any]:
    """Extract and check; returns a summary of the model directory."""
    from quantjobs.backends.hf_source import validate_hf_dir

    name = archive.name.lower()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, dest, max_bytes, max_ratio, max_members)
        else:
            _extract_tar(archive, dest, max_bytes, max_ratio, max_members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise BackendError(
            f"The archive is damaged or not an archive ({exc})."
        ) from None
    root = _model_root(dest)
    source = validate_hf_dir(root, check_architecture=False)
    return {
        "root": str(root),
        "model_type": source.model_type,
        "parameter_count": source.parameter_count,
        "weight_bytes": source.weight_bytes,
        "config": source.config,
    }


def main(argv: list[str]) -> int:
    """Entry point: print one JSON line with the verdict."""
    _limit_resources()
    archive, dest, max_bytes = Path(argv[1]), Path(argv[2]), int(argv[3])
    max_ratio = int(argv[4]) if len(argv) > 4 else MAX_RATIO
    max_members = int(argv[5]) if len(argv) > 5 else MAX_MEMBERS
    try:
        summary = check_archive(archive, dest, max_bytes, max_ratio, max_members)
    except LimitExceeded as exc:
        print(json.dumps({"ok": False, "message": str(exc), "limit": exc.limit}))
        return 0
    except BackendError as exc:
        print(json.dumps({"ok": False, "message": str(exc)}))
        return 0
    except MemoryError:
        print(
            json.dumps(
                {"ok": False, "message": "Checking the archive needed too much memory."}
            )
        )
        return 0
    print(json.dumps({"ok": True, **summary}, default=str))
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv))
