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
    logged_in: Any, user: Any, clean_media: Path
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
