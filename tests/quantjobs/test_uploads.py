"""Hostile and broken model uploads are refused with a clear 4xx before any heavy work."""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests import reliability

pytestmark = pytest.mark.django_db

CANARY = Path("/tmp/quantplan-pickle-canary")


class _Payload:
    def __reduce__(self) -> Any:
        import os

        return (os.system, (f"touch {CANARY}",))


def _gguf_header(*, version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def _safetensors(header: dict[str, Any], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _config(**extra: Any) -> bytes:
    config = {
        "model_type": "llama",
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 10,
        **extra,
    }
    return json.dumps(config).encode()


def _tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


def _zip(entries: list[tuple[str, bytes]], symlink: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return out.getvalue()


GOOD_TENSOR = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}

HOSTILE: list[tuple[str, str, bytes, str]] = [
    ("truncated-gguf", "m.gguf", b"GGUF\x03\x00", "too small"),
    ("bad-magic", "m.gguf", b"GGML" + b"\x00" * 60, "not a GGUF"),
    ("bad-version", "m.gguf", _gguf_header(version=99) + b"\x00" * 64, "version"),
    (
        "absurd-tensor-count",
        "m.gguf",
        _gguf_header(tensors=2**63) + b"\x00" * 64,
        "tensor",
    ),
    ("absurd-kv-count", "m.gguf", _gguf_header(kvs=2**63) + b"\x00" * 64, ""),
    (
        "string-length-2^63",
        "m.gguf",
        _gguf_header(kvs=1) + struct.pack("<Q", 2**63) + b"k" * 32,
        "",
    ),
    (
        "array-length-2^63",
        "m.gguf",
        _gguf_header(kvs=1)
        + struct.pack("<Q", 1)
        + b"k"
        + struct.pack("<IIQ", 9, 4, 2**63),
        "",
    ),
    ("pickle-bin", "pytorch_model.bin", pickle.dumps(_Payload()), "pickle"),
    ("pickle-pt", "model.pt", pickle.dumps(_Payload()), "pickle"),
    ("pickle-pth", "model.pth", pickle.dumps(_Payload()), "pickle"),
    (
        "lone-safetensors",
        "model.safetensors",
        _safetensors(GOOD_TENSOR, b"\x00" * 16),
        "whole model",
    ),
    ("unknown-kind", "model.onnx", b"\x00" * 100, "upload a .gguf"),
    ("tar-dotdot", "m.tar", _tar([("../escape.txt", b"x", None)]), "unsafe path"),
    ("tar-absolute", "m.tar", _tar([("/etc/cron.d/x", b"x", None)]), "unsafe path"),
    (
        "tar-symlink",
        "m.tar",
        _tar([("model/config.json", None, "/etc/passwd")]),
        "link",
    ),
    ("zip-dotdot", "m.zip", _zip([("../../escape.txt", b"x")]), "unsafe path"),
    (
        "zip-symlink",
        "m.zip",
        _zip([("config.json", _config())], symlink="model.safetensors"),
        "link",
    ),
    ("not-an-archive", "m.tar", b"this is not a tar" * 100, "damaged"),
    (
        "auto-map",
        "m.tar",
        _tar(
            [
                (
                    "config.json",
                    _config(auto_map={"AutoModelForCausalLM": "evil.Model"}),
                    None,
                ),
                ("model.safetensors", _safetensors(GOOD_TENSOR, b"\x00" * 16), None),
            ]
        ),
        "auto_map",
    ),
    (
        "safetensors-huge-header",
        "m.tar",
        _tar(
            [
                ("config.json", _config(), None),
                (
                    "model.safetensors",
                    struct.pack("<Q", 200 * 1000 * 1000) + b"{}",
                    None,
                ),
            ]
        ),
        "header",
    ),
    (
        "safetensors-offset-past-end",
        "m.tar",
        _tar(
            [
                ("config.json", _config(), None),
                (
                    "model.safetensors",
                    _safetensors(
                        {
                            "w": {
                                "dtype": "F32",
                                "shape": [1000, 1000],
                                "data_offsets": [0, 4_000_000],
                            }
                        },
                        b"\x00" * 16,
                    ),
                    None,
                ),
            ]
        ),
        "",
    ),
    (
        "archive-with-pickle",
        "m.tar",
        _tar(
            [
                ("config.json", _config(), None),
                ("pytorch_model.bin", pickle.dumps(_Payload()), None),
            ]
        ),
        "pickle",
    ),
    (
        "archive-without-config",
        "m.zip",
        _zip([("readme.txt", b"hello")]),
        "config.json",
    ),
]


@pytest.mark.parametrize(
    ("case", "filename", "content", "message"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_uploads_are_refused_with_a_reason(
    api: Any, clean_media: Path, case: str, filename: str, content: bytes, message: str
) -> None:
    CANARY.unlink(missing_ok=True)
    upload = SimpleUploadedFile(filename, content)
    response = api.post("/api/v1/uploads/", {"file": upload}, format="multipart")

    assert response.status_code == 400, (case, response.content)
    detail = " ".join(response.json()["file"])
    assert message.lower() in detail.lower(), (case, detail)
    assert not CANARY.exists(), "a pickle payload ran"
    from quantjobs.models import ModelUpload

    assert not ModelUpload.objects.exists()
    leftovers = [p for p in (clean_media / "uploads").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
    assert not (clean_media.parent / "escape.txt").exists()
    # The server is still alive and answering.
    assert api.get("/api/v1/uploads/").status_code == 200
    reliability.add("Hostile files", "crafted uploads refused with a 4xx", 1)


def test_an_upload_over_the_limit_is_413(
    api: Any, settings: Any, clean_media: Path
) -> None:
    settings.QUANTPLAN_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile("big.gguf", b"GGUF" + b"\x00" * 2_000_000)
    response = api.post("/api/v1/uploads/", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert "limited" in response.json()["detail"]


@pytest.mark.slow
def test_the_sample_gguf_is_accepted_and_usable_as_a_job_source(
    api: Any, other_api: Any, clean_media: Path, redis_url: str
) -> None:
    from quantjobs.samples import list_samples

    sample = list_samples()[0]
    with sample.path.open("rb") as handle:
        upload = SimpleUploadedFile("smollm2.gguf", handle.read())
    response = api.post("/api/v1/uploads/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == sample.sha256
    assert body["summary"]["architecture"] == "llama"
    job = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0"],
            "source_kind": "upload",
            "source_ref": body["id"],
        },
        format="json",
    )
    assert job.status_code == 201, job.content
    stolen = other_api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0"],
            "source_kind": "upload",
            "source_ref": body["id"],
        },
        format="json",
    )
    assert stolen.status_code == 400
    assert other_api.delete(f"/api/v1/uploads/{body['id']}/").status_code == 404


def test_uploads_are_named_after_the_model_they_hold(
    api: Any, clean_media: Path
) -> None:
    weights = _safetensors(
        {
            "model.embed_tokens.weight": {
                "dtype": "F32",
                "shape": [10, 8],
                "data_offsets": [0, 320],
            }
        },
        b"\0" * 320,
    )
    archive = _tar(
        [
            ("m/config.json", _config(_name_or_path="acme/tiny-llama"), None),
            ("m/model.safetensors", weights, None),
        ]
    )
    response = api.post(
        "/api/v1/uploads/",
        {"file": SimpleUploadedFile("upload-3f2a.tar", archive)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "acme/tiny-llama"  # the config's name, not the file's
    assert body["spec_error"] is None
    listed = api.get("/api/v1/uploads/").json()
    assert [u["name"] for u in listed] == ["acme/tiny-llama"]
