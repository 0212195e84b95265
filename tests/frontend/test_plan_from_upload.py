"""The plan page plans one of the user's uploaded GGUF files from its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db

FORM = {
    "model": "llama-3-70b",  # the default left in the box: the upload wins
    "gpus_chosen": ["cpu-generic-ddr5"],
    "formats": ["gguf-F16", "gguf-Q8_0"],
    "context_tokens": "2048",
    "concurrency": "1",
    "engine": "llama.cpp",
    "kv_cache_dtype": "f16",
    "utilization": "0.5",
    "action": "plan",
}


def test_the_plan_page_plans_an_uploaded_gguf(
    client: Any,
    user: Any,
    tiny_ggufs: dict[str, Path],
    clean_media: Path,
    redis_url: str,
) -> None:
    from quantjobs.uploads import model_upload_check, model_upload_store

    data = tiny_ggufs["gemma2"].read_bytes()
    upload = model_upload_store(
        user_id=user.pk, uploaded=SimpleUploadedFile("g.gguf", data)
    )
    client.force_login(user)
    checking = client.post("/", {**FORM, "upload": str(upload.pk)})
    assert "Select a valid choice" in checking.content.decode(), "not before its check"
    model_upload_check(upload_id=str(upload.pk))
    client.force_login(user)
    page = client.get("/").content.decode()
    assert f'<option value="{upload.pk}">Tiny Gemma2 Test (g.gguf)</option>' in page

    response = client.post("/", {**FORM, "upload": str(upload.pk)})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Traceback" not in html and "errorlist" not in html
    assert ">Tiny Gemma2 Test on Generic" in html
    assert "llama-3-70b on" not in html  # not the catalog model left in the box
    assert "gguf-F16" in html and "gguf-Q8_0" in html


def test_the_plan_page_refuses_someone_elses_upload(
    client: Any,
    user: Any,
    other_user: Any,
    tiny_ggufs: dict[str, Path],
    clean_media: Path,
    redis_url: str,
) -> None:
    from quantjobs.uploads import model_upload_check, model_upload_store

    theirs = model_upload_store(
        user_id=other_user.pk,
        uploaded=SimpleUploadedFile("g.gguf", tiny_ggufs["gemma2"].read_bytes()),
    )
    model_upload_check(upload_id=str(theirs.pk))
    client.force_login(user)
    response = client.post("/", {**FORM, "upload": str(theirs.pk)})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_a_plan_of_an_upload_benchmarks_that_upload(
    client: Any,
    user: Any,
    tiny_ggufs: dict[str, Path],
    clean_media: Path,
    redis_url: str,
) -> None:
    import html as htmllib
    import re

    from quantjobs.uploads import model_upload_check, model_upload_store

    upload = model_upload_store(
        user_id=user.pk,
        uploaded=SimpleUploadedFile("g.gguf", tiny_ggufs["gemma2"].read_bytes()),
    )
    model_upload_check(upload_id=str(upload.pk))  # what the worker's task runs
    client.force_login(user)
    saved = client.post(
        "/", {**FORM, "upload": str(upload.pk), "action": "save", "name": "g"}
    )
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    detail = client.get(saved["Location"]).content.decode()
    href = re.search(r'class="button benchmark-button" href="([^"]+)"', detail)
    assert href is not None
    job_form = client.get(htmllib.unescape(href.group(1))).content.decode()
    kind = re.search(r'<select name="source_kind".*?</select>', job_form, re.S)
    assert kind is not None
    assert re.search(r'<option value="upload"[^>]*selected', kind.group(0))
    assert f'value="{upload.pk}"' in job_form
    assert "Tiny Gemma2 Test" in job_form
