"""Requests a stranger can send: each is a 4xx that says what to change, never a 500.

Bodies over a route's cap are refused from ``Content-Length`` before anything reads
them (300 MiB to the login page, through a real gunicorn, leave no file anywhere);
JSON too deep, with absurd numbers or not an object is a 400 on every JSON endpoint;
``?limit=`` and ``Range`` of any size are answered; evaluation files are stored only
for jobs that are accepted.
"""

from __future__ import annotations

import io
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests import reliability
from tests.hardening.test_load import Server, gunicorn  # noqa: F401 (a fixture)

SECTION = "Hostile requests"
MIB = 1024 * 1024
JSON_ENDPOINTS = ("/api/v1/plans/", "/api/v1/jobs/", "/api/v1/tokens/")


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing here may reach Hugging Face."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


class CountingStream(io.RawIOBase):
    """A request body that records how much of it the server read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"x" * n
        self.read_bytes += n
        return n


# --- body size -----------------------------------------------------------------------


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the server process would spool an upload (its TMPDIR)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.fixture
def server_with_spool(spool_dir: Path, request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue("gunicorn")  # type: ignore[no-any-return]


def _post_until_answered(url: str, path: str, declared: int) -> tuple[bytes, int]:
    """POST ``declared`` bytes of multipart, sending until the server answers."""
    parts = urlparse(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head)
    block = b"--xyz\r\nContent-Disposition: form-data; name=f; filename=a.bin\r\n\r\n"
    block += b"\0" * (MIB - len(block))
    sent = 0
    deadline = time.monotonic() + 60
    try:
        while sent < declared and time.monotonic() < deadline:
            readable, _w, _x = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(block[: min(MIB, declared - sent)])
            sent += min(MIB, declared - sent)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return answer, sent


def test_300_mib_posted_to_the_login_page_are_refused_and_never_stored(
    server_with_spool: Server, spool_dir: Path, settings: Any
) -> None:
    declared = 300 * MIB
    answer, sent = _post_until_answered(
        server_with_spool.url, "/accounts/login/", declared
    )

    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, answer[:500]
    assert b"limited to 2.0 MiB" in answer
    assert _files_under(spool_dir) == []
    assert _files_under(Path(settings.MEDIA_ROOT) / "uploads") == []
    assert sent < declared  # answered long before the body was sent
    reliability.record(
        SECTION, "300 MiB posted to the login page", "413, nothing stored"
    )
    reliability.record(
        SECTION, "bytes sent before the 413 (of 300 MiB)", f"{sent / MIB:.0f} MiB"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "limit_setting"),
    [
        ("/accounts/login/", "QUANTPLAN_MAX_REQUEST_BYTES"),
        ("/api/v1/plans/", "QUANTPLAN_MAX_REQUEST_BYTES"),
        ("/admin/login/", "QUANTPLAN_MAX_REQUEST_BYTES"),
        ("/api/v1/jobs/", "QUANTPLAN_MAX_EVAL_TEXT_BYTES"),
        ("/jobs/new/", "QUANTPLAN_MAX_EVAL_TEXT_BYTES"),
        ("/api/v1/uploads/", "QUANTPLAN_MAX_UPLOAD_BYTES"),
    ],
)
def test_a_body_over_the_routes_cap_is_413_before_anything_reads_it(
    client: Any, settings: Any, path: str, limit_setting: str
) -> None:
    cap = getattr(settings, limit_setting) + (
        0 if limit_setting == "QUANTPLAN_MAX_REQUEST_BYTES" else MIB
    )
    body = CountingStream(cap + 1)
    response = client.generic(
        "POST",
        path,
        b"",
        content_type="application/json",
        CONTENT_LENGTH=str(cap + 1),
        **{"wsgi.input": body},
    )

    assert response.status_code == 413
    assert body.read_bytes == 0
    text = response.content.decode()
    assert "limited to" in text
    if path.startswith("/api/"):
        assert response.json()["code"] == "too_large"
    reliability.add(SECTION, "oversized bodies refused unread (413)")


# --- JSON ----------------------------------------------------------------------------


@pytest.fixture
def session_api(user: Any) -> Any:
    """A signed-in session client (token creation needs one)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client


def _post_raw(client: Any, path: str, raw: str) -> Any:
    return client.generic("POST", path, raw, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("depth", [33, 100_000])
def test_json_nested_too_deep_is_a_400_on_every_json_endpoint(
    session_api: Any, path: str, depth: int
) -> None:
    response = _post_raw(session_api, path, "[" * depth + "]" * depth)

    assert response.status_code == 400, response.content[:300]
    assert "nested more than 32 levels" in response.json()["detail"]
    reliability.add(SECTION, "deeply nested JSON bodies refused (400)")


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_json_as_deep_as_allowed_is_parsed(session_api: Any, path: str) -> None:
    nested = {"name": "x"}
    for _ in range(30):
        nested = {"a": nested}
    response = _post_raw(session_api, path, json.dumps(nested))

    assert response.status_code in (200, 201, 400)
    assert "nested" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("digits", [21, 5000])
def test_a_huge_integer_in_a_json_body_is_a_400(
    session_api: Any, path: str, digits: int
) -> None:
    response = _post_raw(session_api, path, '{"name": "x", "n": ' + "9" * digits + "}")

    assert response.status_code == 400
    assert "at most 20 digits" in response.json()["detail"]
    reliability.add(SECTION, "huge numbers in JSON refused (400)")


@pytest.mark.django_db
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "5", "null", "true", "1e999"])
def test_a_json_body_that_is_not_an_object_is_a_400(
    session_api: Any, path: str, raw: str
) -> None:
    response = _post_raw(session_api, path, raw)

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "must be an object" in detail or "finite" in detail
    reliability.add(SECTION, "non-object JSON bodies refused (400)")


@pytest.mark.django_db
def test_a_5000_digit_integer_in_a_config_json_is_a_field_error(
    api: Any, user: Any
) -> None:
    from django.test import Client

    from tests.frontend.test_pages import PLAN_FORM

    config = '{"hidden_size": ' + "7" * 5000 + ', "num_hidden_layers": 2}'
    page = Client()
    page.force_login(user)
    html = page.post("/", {**PLAN_FORM, "config_text": config}).content.decode()
    as_api = _post_raw(
        api,
        "/api/v1/plans/",
        '{"gpu": "l4", "config": {"hidden_size": 1' + "0" * 4999 + "}}",
    )

    assert "config.json: a number has 5000 digits" in html
    assert as_api.status_code == 400
    assert "at most 20 digits" in as_api.json()["detail"]
    reliability.add(SECTION, "5000-digit integers in config.json refused")


# --- query strings and headers -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["limit=" + "9" * 5000, "limit=1000000", "limit=-1", "offset=" + "9" * 40]
)
def test_a_huge_or_negative_page_parameter_is_a_400(api: Any, query: str) -> None:
    for path in ("/api/v1/jobs/", "/api/v1/plans/", "/api/v1/artifacts/"):
        response = api.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.content[:200])
        assert "must be a whole number from 0 to" in response.json()["detail"]
    reliability.add(SECTION, "huge ?limit= / ?offset= refused (400)")


@pytest.mark.django_db
def test_a_page_parameter_within_bounds_pages(api: Any) -> None:
    response = api.get("/api/v1/jobs/?limit=500&offset=0")

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status", "first", "length"),
    [
        ("bytes=" + "9" * 5000 + "-", 416, None, None),
        ("bytes=0-" + "9" * 5000, 206, 0, None),
        ("bytes=-" + "9" * 5000, 206, 0, None),
        ("bytes=0-1, 4-5", 200, 0, None),
        ("items=0-5", 200, 0, None),
        ("bytes=abc", 200, 0, None),
        ("bytes=2-5", 206, 2, 4),
    ],
)
def test_range_headers_are_served_ignored_or_416_never_500(
    owned: Any,
    api: Any,
    header: str,
    status: int,
    first: int | None,
    length: int | None,
) -> None:
    from django.conf import settings

    path = Path(settings.QUANTPLAN_ARTIFACT_ROOT) / owned.artifact.path
    data = path.read_bytes()
    response = api.get(
        f"/api/v1/artifacts/{owned.artifact.pk}/download/", HTTP_RANGE=header
    )

    assert response.status_code == status
    if status != 416:
        body = b"".join(response.streaming_content)
        expected = data[first:] if length is None else data[first : first + length]
        assert body == expected
    reliability.add(SECTION, "hostile Range headers answered (200/206/416)")


# --- evaluation files ----------------------------------------------------------------


def _eval_text(n_bytes: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog, and then it rests a while.\n"
    return (line * (n_bytes // len(line) + 1))[:n_bytes]


@pytest.mark.django_db
def test_an_evaluation_file_over_2_mib_is_accepted_as_on_the_page(
    api: Any, redis_url: str, clean_media: Path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("mine.txt", _eval_text(int(2.1 * MIB)))
    response = api.post(
        "/api/v1/jobs/",
        {"method": "selftest", "formats": "selftest", "eval_file": upload},
        format="multipart",
    )

    assert response.status_code == 201, response.content[:300]
    assert response.json()["eval_text_name"] == "mine.txt"
    assert len(_files_under(clean_media / "uploads")) == 1
    reliability.record(SECTION, "2.1 MiB evaluation file via the API", "201")


@pytest.mark.django_db
def test_an_evaluation_file_over_the_limit_is_refused_with_the_limit_on_api_and_page(
    api: Any, user: Any, redis_url: str, clean_media: Path, settings: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    settings.QUANTPLAN_MAX_EVAL_TEXT_BYTES = 3 * MIB
    big = _eval_text(int(3.5 * MIB))
    as_api = api.post(
        "/api/v1/jobs/",
        {
            "method": "selftest",
            "formats": "selftest",
            "eval_file": SimpleUploadedFile("big.txt", big),
        },
        format="multipart",
    )
    page = Client()
    page.force_login(user)
    as_page = page.post(
        "/jobs/new/",
        {
            "method": "selftest",
            "formats": "selftest",
            "source_kind": "sample",
            "eval_file": SimpleUploadedFile("big.txt", big),
        },
    )

    assert as_api.status_code == 400
    assert "limited to 3 MiB" in as_api.json()["eval_file"][0]
    assert as_page.status_code == 200
    assert "limited to 3 MiB" in as_page.content.decode()
    assert _files_under(clean_media) == []
    reliability.record(
        SECTION,
        "evaluation file limit (page and API alike)",
        "QUANTPLAN_MAX_EVAL_TEXT_BYTES",
    )


@pytest.mark.django_db
def test_refused_job_posts_leave_no_evaluation_file(
    api: Any, redis_url: str, clean_media: Path, settings: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    def post(**fields: Any) -> Any:
        body = {
            "method": "selftest",
            "formats": "selftest",
            "eval_file": SimpleUploadedFile("mine.txt", _eval_text(20_000)),
            **fields,
        }
        return api.post("/api/v1/jobs/", body, format="multipart")

    refused = [
        post(method="gguf", formats="gguf-Q9_X"),  # unknown format
        post(source_kind="upload", source_ref="00000000-0000-0000-0000-000000000000"),
        post(plan="00000000-0000-0000-0000-000000000000"),
        post(source_kind="hf", source_ref="../etc"),
    ]
    settings.QUANTPLAN_MAX_ACTIVE_JOBS = 0
    refused.append(post())  # over the quota

    assert [r.status_code for r in refused] == [400, 400, 400, 400, 429]
    assert _files_under(clean_media) == []
    reliability.record(
        SECTION, "refused job posts with an evaluation file", len(refused)
    )
    reliability.record(SECTION, "files they left in MEDIA_ROOT", 0)


def test_the_proxy_and_gunicorn_bound_requests_too() -> None:
    root = Path(__file__).resolve().parents[2]
    nginx = (root / "deploy" / "nginx.conf").read_text()
    gunicorn_conf = (root / "deploy" / "gunicorn.conf.py").read_text()

    assert "client_max_body_size 2m;" in nginx
    assert "client_max_body_size 2049m;" in nginx  # uploads: 2 GiB + the form
    assert "limit_request_line = 8190" in gunicorn_conf
    assert "limit_request_fields = 100" in gunicorn_conf
    assert "limit_request_field_size = 8190" in gunicorn_conf
    import yaml

    docs = list(yaml.safe_load_all((root / "deploy" / "k8s" / "web.yaml").read_text()))
    body_limits = {
        path["path"]: doc["metadata"]["annotations"][
            "nginx.ingress.kubernetes.io/proxy-body-size"
        ]
        for doc in docs
        if doc and doc["kind"] == "Ingress"
        for rule in doc["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert body_limits == {
        "/": "2m",
        "/api/v1/uploads/": "2049m",
        "/api/v1/jobs/": "9m",
        "/jobs/new/": "9m",
    }
