"""Hostile and broken model uploads are refused with a clear reason, nothing kept.

What is cheap to see (the kind of file, its size, the quota) is a 4xx at once; the
content is checked off the web request, by the check a worker runs
(``model_upload_check``, here called as the task calls it), in its limited child
process, on real archives.
"""

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


def _post(api: Any, filename: str, content: bytes) -> Any:
    upload = SimpleUploadedFile(filename, content)
    return api.post("/api/v1/uploads/", {"file": upload}, format="multipart")


def _check(api: Any, upload_id: str) -> dict[str, Any]:
    """Run the check the worker's task runs, then read the upload as its owner."""
    from quantjobs.uploads import model_upload_check

    model_upload_check(upload_id=upload_id)
    response = api.get(f"/api/v1/uploads/{upload_id}/")
    assert response.status_code == 200
    return dict(response.json())


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("case", "filename", "content", "message"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_uploads_are_refused_with_a_reason(
    api: Any,
    clean_media: Path,
    redis_url: str,
    case: str,
    filename: str,
    content: bytes,
    message: str,
) -> None:
    from quantjobs.models import ModelUpload

    CANARY.unlink(missing_ok=True)
    response = _post(api, filename, content)

    if response.status_code == 400:  # refused from its name alone
        detail = " ".join(response.json()["file"])
        assert not ModelUpload.objects.exists()
        reliability.add("Hostile files", "crafted uploads refused with a 4xx", 1)
    else:
        assert response.status_code == 201, (case, response.content)
        assert response.json()["status"] == "checking"
        body = _check(api, response.json()["id"])
        assert body["status"] == "refused", (case, body)
        assert body["size_bytes"] == 0, "a refused upload counts for nothing"
        detail = body["reason"]
        reliability.add("Hostile files", "crafted uploads refused by the check", 1)
    assert message.lower() in detail.lower(), (case, detail)
    assert not CANARY.exists(), "a pickle payload ran"
    assert _files_under(clean_media / "uploads") == []
    assert not (clean_media.parent / "escape.txt").exists()
    # The server is still alive and answering.
    assert api.get("/api/v1/uploads/").status_code == 200


def _model_tar(weight_bytes: int = 16, *, gz: bool = False) -> bytes:
    """A small real model directory; gzipped, its weights pack to about half."""
    import os

    tensor = {
        "w": {
            "dtype": "U8",
            "shape": [weight_bytes],
            "data_offsets": [0, weight_bytes],
        }
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w") as tar:
        for name, data in (
            ("model/config.json", _config()),
            (
                "model/model.safetensors",
                _safetensors(
                    tensor,
                    os.urandom(weight_bytes // 2)
                    + b"\x00" * (weight_bytes - weight_bytes // 2),
                ),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_good_archive_shows_checking_then_ready_and_counts_in_the_quota(
    api: Any, clean_media: Path, redis_url: str
) -> None:
    from quantjobs.artifacts import storage_used_bytes
    from quantjobs.models import ModelUpload

    response = _post(api, "m.tar", _model_tar(50_000))
    assert response.status_code == 201, response.content
    upload_id = response.json()["id"]
    assert response.json()["status"] == "checking"
    waiting = api.post(
        "/api/v1/jobs/",
        {
            "method": "rtn",
            "formats": ["rtn-int8-g-1"],
            "source_kind": "upload",
            "source_ref": upload_id,
        },
        format="json",
    )
    assert waiting.status_code == 400
    assert "still being checked" in json.dumps(waiting.json())

    body = _check(api, upload_id)
    assert body["status"] == "ready", body
    assert body["summary"]["model_type"] == "llama"
    upload = ModelUpload.objects.get(pk=upload_id)
    assert body["size_bytes"] == sum(
        p.stat().st_size for p in upload.abspath.rglob("*") if p.is_file()
    )
    assert body["size_bytes"] > 50_000
    assert storage_used_bytes(user_id=upload.user_id) == body["size_bytes"]
    assert not list(upload.abspath.parent.parent.glob("*.tar")), "the archive is gone"


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A zip and a tar.gz of 2.1 GiB of zeros, each a few MB."""
    folder = tmp_path_factory.mktemp("bombs")
    size = int(2.1 * 1024**3)
    chunk = b"\x00" * (1 << 20)
    zip_path = folder / "bomb.zip"
    with zipfile.ZipFile(
        zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9
    ) as zf:
        with zf.open("model.safetensors", "w", force_zip64=True) as out:
            for _ in range(size // len(chunk)):
                out.write(chunk)

    class Zeros(io.RawIOBase):
        def __init__(self, left: int) -> None:
            self.left = left

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = b"\x00" * n
            self.left -= n
            return n

    tgz_path = folder / "bomb.tar.gz"
    with tarfile.open(tgz_path, "w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("model/model.safetensors")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size), 1 << 20))
    return {"zip": zip_path, "tar.gz": tgz_path}


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_small_archive_that_unpacks_to_2_gib_is_refused_early_not_unpacked(
    api: Any, clean_media: Path, redis_url: str, bombs: dict[str, Path], kind: str
) -> None:
    import time

    path = bombs[kind]
    packed = path.stat().st_size
    assert packed < 12 * 1024**2, packed
    response = _post(api, f"m.{kind}", path.read_bytes())
    assert response.status_code == 201, response.content
    started = time.monotonic()
    body = _check(api, response.json()["id"])
    took_s = time.monotonic() - started
    assert body["status"] == "refused"
    assert "100 times its own size" in body["reason"], body["reason"]
    assert took_s < 20, "refused from the headers, not after unpacking 2 GiB"
    assert _files_under(clean_media / "uploads") == []
    reliability.record(
        "Hostile files",
        f"{packed / 1e6:.1f} MB {kind} unpacking to 2.1 GiB: refused in (s)",
        round(took_s, 1),
    )


def test_an_archive_with_too_many_files_is_refused_and_nothing_is_left(
    api: Any, clean_media: Path, redis_url: str, settings: Any
) -> None:
    settings.QUANTPLAN_UPLOAD_MAX_FILES = 50
    content = _tar(
        [("config.json", _config(), None)]
        + [(f"f{i}.txt", b"x" * 100, None) for i in range(60)]
    )
    body = _check(api, _post(api, "m.tar", content).json()["id"])
    assert body["status"] == "refused"
    assert "more than 50 entries" in body["reason"]
    assert _files_under(clean_media / "uploads") == []


def test_an_archive_bigger_than_the_remaining_quota_is_refused(
    api: Any, clean_media: Path, redis_url: str, settings: Any
) -> None:
    settings.QUANTPLAN_MAX_STORAGE_BYTES = 400_000
    first = _post(api, "a.tar.gz", _model_tar(150_000, gz=True)).json()
    first = _check(api, first["id"])
    assert first["status"] == "ready"
    # Packed it fits beside the first; unpacked it would not.
    second = _post(api, "b.tar.gz", _model_tar(300_000, gz=True)).json()
    second = _check(api, second["id"])
    assert second["status"] == "refused"
    assert "storage quota leaves" in second["reason"], second["reason"]
    # Once the quota is used up, an upload is refused at once.
    settings.QUANTPLAN_MAX_STORAGE_BYTES = first["size_bytes"] + 1000
    third = _post(api, "c.tar", _model_tar(10_000))
    assert third.status_code == 400
    assert "delete some first" in " ".join(third.json()["file"])


@pytest.mark.slow
@pytest.mark.worker
def test_a_worker_checks_the_upload_off_the_web_request(
    api: Any, start_worker: Any, clean_media: Path
) -> None:
    from tests.helpers import wait_for

    response = _post(api, "m.tar.gz", _model_tar(20_000, gz=True))
    assert response.status_code == 201
    assert response.json()["status"] == "checking"
    upload_id = response.json()["id"]
    start_worker("cpu")
    body = wait_for(
        lambda: (
            (b := api.get(f"/api/v1/uploads/{upload_id}/").json())["status"]
            != "checking"
            and b
        ),
        timeout_s=60,
    )
    assert body["status"] == "ready", body


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
    assert response.json()["status"] == "checking"
    body = _check(api, response.json()["id"])
    assert body["status"] == "ready", body
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


def test_an_upload_no_worker_checked_in_time_is_refused_and_frees_its_quota(
    api: Any, clean_media: Path, redis_url: str, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from quantjobs.artifacts import storage_used_bytes
    from quantjobs.models import ModelUpload
    from quantjobs.services import jobs_reap_stale

    settings.QUANTPLAN_UPLOAD_CHECK_MAX_WAIT_S = 600
    upload_id = _post(api, "m.tar", _model_tar(10_000)).json()["id"]
    upload = ModelUpload.objects.get(pk=upload_id)
    assert storage_used_bytes(user_id=upload.user_id) == upload.size_bytes > 0
    jobs_reap_stale()
    assert api.get(f"/api/v1/uploads/{upload_id}/").json()["status"] == "checking"

    ModelUpload.objects.filter(pk=upload_id).update(
        created_at=timezone.now() - timedelta(seconds=601)
    )
    jobs_reap_stale()
    body = api.get(f"/api/v1/uploads/{upload_id}/").json()
    assert body["status"] == "refused"
    assert "No worker checked it within 10 minutes" in body["reason"]
    assert storage_used_bytes(user_id=upload.user_id) == 0
    assert _files_under(clean_media / "uploads") == []


def test_uploads_are_named_after_the_model_they_hold(
    api: Any, clean_media: Path, redis_url: str
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
    assert response.json()["name"] == "upload-3f2a"  # until the check reads it
    body = _check(api, response.json()["id"])
    assert body["name"] == "acme/tiny-llama"  # the config's name, not the file's
    assert body["spec_error"] is None
    listed = api.get("/api/v1/uploads/").json()
    assert [u["name"] for u in listed] == ["acme/tiny-llama"]
