"""The one publisher of artifacts: each file is hashed once, refused when it is not
the file the backend described, and moved into the store with its row."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

DATA = b"GGUF" + bytes(range(256)) * 40


def _job(user: Any) -> Any:
    from quantjobs.models import Job

    return Job.objects.create(
        user=user,
        method=Job.Method.SELFTEST,
        formats=["selftest-a"],
        source_kind=Job.SourceKind.SAMPLE,
        source_ref="smollm2-135m-instruct-q4_1",
    )


def _written() -> Path:
    """A finished file where the child writes them: in the work folder."""
    from django.conf import settings

    path = Path(settings.QUANTPLAN_WORK_ROOT) / "attempt" / "out-0" / "model.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DATA)
    return path


def _spy_on_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    from quantjobs import artifacts

    hashed: list[Path] = []
    real = artifacts.sha256_file

    def counting(path: Path, *args: Any, **kwargs: Any) -> str:
        hashed.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(artifacts, "sha256_file", counting)
    return hashed


def test_the_backends_digest_is_recorded_and_the_file_not_hashed_again(
    user: Any, clean_media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantjobs.artifacts import artifact_abspath, publish_result

    hashed = _spy_on_hashing(monkeypatch)
    digest = hashlib.sha256(DATA).hexdigest()
    result = publish_result(
        job=_job(user),
        event={
            "format": "selftest-a",
            "artifact_path": str(_written()),
            "sha256": digest,
            "size_bytes": len(DATA),
        },
    )
    assert hashed == []
    assert result.artifact.sha256 == digest
    assert result.artifact.size_bytes == len(DATA)
    assert artifact_abspath(result.artifact).read_bytes() == DATA


def test_a_file_the_backend_did_not_hash_is_hashed_once_here(
    user: Any, clean_media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantjobs.artifacts import publish_result

    hashed = _spy_on_hashing(monkeypatch)
    path = _written()
    result = publish_result(
        job=_job(user),
        event={"format": "selftest-a", "artifact_path": str(path), "sha256": None},
    )
    assert hashed == [path.resolve()]
    assert result.artifact.sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_file_of_another_size_than_reported_is_refused_and_not_stored(
    user: Any, clean_media: Path
) -> None:
    from quantjobs.artifacts import ArtifactCheckFailed, artifact_root, publish_result
    from quantjobs.models import Artifact, JobResult

    path = _written()
    with pytest.raises(ArtifactCheckFailed, match="not the 99 the backend reported"):
        publish_result(
            job=_job(user),
            event={
                "format": "selftest-a",
                "artifact_path": str(path),
                "sha256": hashlib.sha256(DATA).hexdigest(),
                "size_bytes": 99,
            },
        )
    assert not Artifact.objects.exists() and not JobResult.objects.exists()
    stored = artifact_root()
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))
