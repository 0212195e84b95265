"""Model uploads from the browser's page: form errors, the sample accepted, rename,
delete (not while a job reads it), and the quantize link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def test_a_pickle_upload_is_a_form_error_saying_why(
    logged_in: Any, clean_media: Path
) -> None:
    from quantjobs.models import ModelUpload

    response = logged_in.post(
        "/uploads/", {"file": SimpleUploadedFile("model.bin", b"\x80\x04K\x01.")}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="field-file"' in html and "pickle" in html.lower()
    assert not ModelUpload.objects.exists()
    empty = logged_in.post("/uploads/", {})
    assert (
        empty.status_code == 400 and "This field is required" in empty.content.decode()
    )


def test_an_upload_over_the_limit_is_refused_on_the_form(
    logged_in: Any, settings: Any, clean_media: Path
) -> None:
    settings.QUANTPLAN_MAX_UPLOAD_BYTES = 1000
    big = SimpleUploadedFile("big.gguf", b"GGUF" + b"\x00" * 5000)
    response = logged_in.post("/uploads/", {"file": big})
    assert response.status_code == 400
    assert "limited to 0.0 GB" in response.content.decode()


@pytest.mark.slow
def test_the_sample_uploads_renames_links_to_a_job_and_deletes(
    logged_in: Any, user: Any, clean_media: Path, redis_url: str
) -> None:
    from quantjobs.models import Job, ModelUpload
    from quantjobs.samples import list_samples

    sample = list_samples()[0]
    with sample.path.open("rb") as handle:
        upload = SimpleUploadedFile("smollm2.gguf", handle.read())
    response = logged_in.post("/uploads/", {"file": upload})
    assert response.status_code == 302
    stored = ModelUpload.objects.get()
    assert stored.sha256 == sample.sha256
    page = logged_in.get("/uploads/").content.decode()
    assert "smollm2.gguf" in page and sample.sha256 in page
    assert f"source_kind=upload&amp;source_ref={stored.pk}" in page
    assert "artifact quota used" in page

    logged_in.post(f"/uploads/{stored.pk}/rename/", {"filename": "a/b"})
    stored.refresh_from_db()
    assert stored.filename == "smollm2.gguf"
    logged_in.post(f"/uploads/{stored.pk}/rename/", {"filename": "SmolLM2 Q4_1"})
    stored.refresh_from_db()
    assert stored.filename == "SmolLM2 Q4_1"

    job = Job.objects.create(
        user=user,
        method="gguf",
        formats=["gguf-Q8_0"],
        source_kind="upload",
        source_ref=str(stored.pk),
    )
    logged_in.post(f"/uploads/{stored.pk}/delete/")
    assert ModelUpload.objects.filter(pk=stored.pk).exists()
    assert "cancel" in logged_in.get("/uploads/").content.decode()
    job.finish(Job.Status.CANCELLED)
    logged_in.post(f"/uploads/{stored.pk}/delete/")
    assert not ModelUpload.objects.exists()
    assert not stored.abspath.exists()


def _tus(client: Any, method: str, url: str, body: bytes = b"", **headers: str) -> Any:
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic(
        method,
        url,
        body,
        content_type="application/offset+octet-stream" if body else "",
        HTTP_TUS_RESUMABLE="1.0.0",
        **extra,
    )


def _create(client: Any, length: int, name: str = "smollm2.gguf") -> str:
    import base64

    meta = "filename " + base64.b64encode(name.encode()).decode()
    response = _tus(
        client, "POST", "/uploads/tus/", upload_length=str(length), upload_metadata=meta
    )
    assert response.status_code == 201, response.content
    assert response["Tus-Resumable"] == "1.0.0"
    return response["Location"]


def test_tus_says_what_it_supports_and_refuses_what_it_cannot_take(
    logged_in: Any, settings: Any, clean_media: Path
) -> None:
    options = _tus(logged_in, "OPTIONS", "/uploads/tus/")
    assert options["Tus-Version"] == "1.0.0" and "creation" in options["Tus-Extension"]
    settings.QUANTPLAN_MAX_UPLOAD_BYTES = 1000
    big = _tus(logged_in, "POST", "/uploads/tus/", upload_length="5000")
    assert big.status_code == 413 and "limited" in big.json()["detail"]
    none = _tus(logged_in, "POST", "/uploads/tus/")
    assert none.status_code == 400 and "Upload-Length" in none.json()["detail"]
    url = _create(logged_in, 10, "x.bin")
    wrong = _tus(logged_in, "PATCH", url, b"abc", upload_offset="5")
    assert wrong.status_code == 409 and "must be 0" in wrong.json()["detail"]
    # a pickle named file completes and is refused with the reason
    done = _tus(logged_in, "PATCH", url, b"0123456789", upload_offset="0")
    assert done.status_code == 204 and done["Upload-Offset"] == "10"
    status = logged_in.get(url).json()
    assert status["upload_id"] is None and "pickle" in status["error"].lower()
    assert not [p for p in clean_media.rglob("*") if p.is_file()]


def test_a_tus_upload_resumes_after_a_dropped_connection_and_becomes_an_upload(
    logged_in: Any, client: Any, user: Any, clean_media: Path, redis_url: str
) -> None:
    import io

    from django.contrib.auth.models import User

    from quantjobs.models import ModelUpload
    from quantjobs.samples import list_samples

    sample = list_samples()[0]
    data = sample.path.read_bytes()
    url = _create(logged_in, len(data))

    # The first request carries 3 MB of a 5 MB chunk when the connection drops:
    # the server keeps the 3 MB it received.
    class Dropped(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            chunk = super().read(size)
            if self.tell() > 3_000_000:
                raise OSError("connection reset")
            return chunk

    from quantjobs import tus
    from quantjobs.selectors import tus_upload_get_for_user

    pending = tus_upload_get_for_user(user=user, tus_id=url.rstrip("/").split("/")[-1])
    with pytest.raises(OSError):
        tus.tus_append(upload=pending, offset_bytes=0, stream=Dropped(data[:5_000_000]))
    head = _tus(logged_in, "HEAD", url)
    offset = int(head["Upload-Offset"])
    assert 2_000_000 < offset <= 3_000_000
    assert head["Upload-Length"] == str(len(data))
    # another user cannot see or feed it
    other = User.objects.create_user("mallory", password="x" * 12)
    client.force_login(other)
    assert _tus(client, "HEAD", url).status_code == 404
    assert (
        _tus(client, "PATCH", url, b"x", upload_offset=str(offset)).status_code == 404
    )
    client.force_login(user)
    # resume from the offset the server reported, in 8 MB pieces
    while offset < len(data):
        piece = data[offset : offset + 8 * 1024 * 1024]
        response = _tus(logged_in, "PATCH", url, piece, upload_offset=str(offset))
        assert response.status_code == 204, response.content
        offset = int(response["Upload-Offset"])
    status = logged_in.get(url).json()
    assert status["error"] == "" and status["upload_id"]
    stored = ModelUpload.objects.get(pk=status["upload_id"])
    assert stored.sha256 == sample.sha256 and stored.filename == "smollm2.gguf"
    assert not list((clean_media / "uploads").rglob("partial/*"))
    page = logged_in.get(f"/uploads/?uploaded={stored.pk}", follow=True)
    assert "Uploaded smollm2.gguf" in page.content.decode()


def test_the_upload_count_limit_holds_for_the_page_and_tus(
    logged_in: Any, user: Any, settings: Any, clean_media: Path
) -> None:
    from quantjobs.models import ModelUpload

    settings.QUANTPLAN_MAX_UPLOADS = 1
    ModelUpload.objects.create(
        user=user, filename="a.gguf", kind="gguf", path="x", size_bytes=1, sha256="0"
    )
    page = logged_in.post("/uploads/", {"file": SimpleUploadedFile("b.gguf", b"GGUF")})
    assert page.status_code == 400 and "the limit is 1" in page.content.decode()
    refused = _tus(logged_in, "POST", "/uploads/tus/", upload_length="10")
    assert refused.status_code == 429 and "the limit is 1" in refused.json()["detail"]
