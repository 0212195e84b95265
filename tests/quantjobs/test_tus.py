"""Resumable (tus) browser uploads: an abandoned one leaves nothing behind."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

pytestmark = pytest.mark.database


@pytest.mark.django_db
def test_the_reaper_removes_an_abandoned_upload_and_keeps_a_live_one(
    user: Any, settings: Any, tmp_path: Path
) -> None:
    from quantjobs.models import TusUpload
    from quantjobs.services import jobs_reap_stale
    from quantjobs.tus import tus_append, tus_create

    settings.QUANTPLAN_UPLOAD_ROOT = str(tmp_path)
    settings.QUANTPLAN_TUS_ABANDONED_AFTER_S = 3600
    abandoned = tus_create(
        user=user, length_bytes=1000, metadata={"filename": "a.gguf"}
    )
    tus_append(upload=abandoned, offset_bytes=0, stream=io.BytesIO(b"x" * 400))
    live = tus_create(user=user, length_bytes=1000, metadata={"filename": "b.gguf"})
    abandoned_file = tmp_path / abandoned.path
    live_file = tmp_path / live.path
    assert abandoned_file.stat().st_size == 400 and live_file.exists()
    TusUpload.objects.filter(pk=abandoned.pk).update(
        updated_at=timezone.now() - timedelta(hours=2)
    )

    jobs_reap_stale()

    assert not abandoned_file.exists()
    assert not TusUpload.objects.filter(pk=abandoned.pk).exists()
    assert live_file.exists()
    assert TusUpload.objects.filter(pk=live.pk).exists()
