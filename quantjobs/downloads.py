"""Streaming artifact downloads with HTTP Range support and a checksum header."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

from quantjobs.artifacts import artifact_abspath
from quantjobs.models import Artifact

CHUNK_BYTES = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _stream(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            block = handle.read(min(CHUNK_BYTES, remaining))
            if not block:
                return
            remaining -= len(block)
            yield block


class IgnoreRange(Exception):
    """A Range header this server does not serve: answer 200 with the whole file.

    RFC 9110 (14.2) lets a server ignore Range; it does so for other units than
    bytes, several ranges at once, and a header it cannot read.
    """


MAX_RANGE_DIGITS = 19  # past any file size, and int() of it is cheap


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single byte range; None if not satisfiable.

    Raises :class:`IgnoreRange` for a header to ignore (multi-range, other units,
    malformed).
    """
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise IgnoreRange(header)
    first, last = match.group(1), match.group(2)
    # Positions past any real file: a start that far lies beyond the end; an end or
    # a suffix that long covers the whole file.
    if len(first) > MAX_RANGE_DIGITS:
        return None
    if len(last) > MAX_RANGE_DIGITS:
        last = str(size)
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            return None
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def artifact_response(request: HttpRequest, artifact: Artifact) -> HttpResponse:
    """The file as an attachment; 206 for a valid Range, 416 for an unsatisfiable one."""
    path = artifact_abspath(artifact)
    if not path.is_file():
        raise Http404("The artifact's file is missing.")
    size = path.stat().st_size
    headers = {
        "Content-Disposition": f'attachment; filename="{artifact.filename}"',
        "Accept-Ranges": "bytes",
        "X-Checksum-SHA256": artifact.sha256,
        "ETag": f'"{artifact.sha256}"',
    }
    range_header = request.headers.get("Range")
    if range_header and request.headers.get("If-Range", f'"{artifact.sha256}"') == (
        f'"{artifact.sha256}"'
    ):
        try:
            parsed = parse_range(range_header, size)
        except IgnoreRange:
            return _whole(path, size, artifact, headers)
        if parsed is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end = parsed
        response = StreamingHttpResponse(
            _stream(path, start, end - start + 1),
            status=206,
            content_type=artifact.content_type,
            headers=headers,
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        return response
    return _whole(path, size, artifact, headers)


def _whole(
    path: Path, size: int, artifact: Artifact, headers: dict[str, str]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _stream(path, 0, size), content_type=artifact.content_type, headers=headers
    )
    response["Content-Length"] = str(size)
    return response
