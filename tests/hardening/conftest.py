"""Hardening fixtures: real objects owned by one user, and the reliability figures.

``owned`` builds, for ``user`` (alice), one of everything that has an id in a URL:
a saved plan (through the planner service), a finished job with an artifact whose
small file really lies under ``QUANTPLAN_ARTIFACT_ROOT``, a queued job, an uploaded
model with its file under ``QUANTPLAN_UPLOAD_ROOT``, and an API token.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import reliability


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/reliability.md (a no-op if the root conftest's hook already did)."""
    reliability.write_report()


@pytest.fixture(name="reliability")
def reliability_fixture() -> Any:
    """The collector: ``reliability.record(section, key, value)``, ``add``, ``note``."""
    return reliability


@dataclass
class Owned:
    """User A's objects and the ids that name them in URLs."""

    plan: Any
    job: Any
    queued_job: Any
    artifact: Any
    upload: Any
    token: Any
    comparison: Any
    tus_upload: Any
    plan_recipe_id: str
    job_recipe_id: str

    def ids(self) -> dict[str, Any]:
        return {
            "plan": self.plan.pk,
            "job": self.job.pk,
            "queued_job": self.queued_job.pk,
            "artifact": self.artifact.pk,
            "upload": self.upload.pk,
            "token": self.token.pk,
            "comparison": self.comparison.pk,
            "tus_upload": self.tus_upload.pk,
        }


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def owned(user: Any, api: Any, clean_media: Path) -> Iterator[Owned]:
    """One of each object with an id, owned by ``user``; files are real and small."""
    from django.conf import settings

    from frontend.services import api_token_create
    from planner import services as plan_services
    from planner.services import PlanInput
    from quantjobs.models import Artifact, Job, JobResult, ModelUpload
    from quantjobs.samples import SAMPLES

    data = PlanInput(
        model="llama-3.1-8b", gpu="l4", formats=("gguf-Q4_K_M", "gguf-Q8_0")
    )
    report = plan_services.plan_compute(data=data, user=user)
    plan = plan_services.plan_save(
        user=user, name="alice's plan", data=data, report=report
    )

    sample = next(iter(SAMPLES))
    job = Job.objects.create(
        user=user,
        method=Job.Method.GGUF,
        formats=["gguf-Q4_K_M"],
        source_kind=Job.SourceKind.SAMPLE,
        source_ref=sample,
        model_id="llama-3.1-8b",
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        plan=plan,
    )
    artifact_id = uuid.uuid4()
    relative = Path(str(user.pk)) / str(artifact_id) / "model-gguf-Q4_K_M.gguf"
    payload = b"GGUF" + bytes(range(256)) * 4
    sha = _write(Path(settings.QUANTPLAN_ARTIFACT_ROOT) / relative, payload)
    artifact = Artifact.objects.create(
        id=artifact_id,
        user=user,
        job=job,
        format="gguf-Q4_K_M",
        filename=relative.name,
        path=str(relative),
        size_bytes=len(payload),
        sha256=sha,
    )
    JobResult.objects.create(
        job=job,
        format="gguf-Q4_K_M",
        artifact=artifact,
        metrics={"perplexity": 10.5, "base_perplexity": 10.0},
    )
    queued_job = Job.objects.create(
        user=user,
        method=Job.Method.SELFTEST,
        formats=["selftest"],
        source_kind=Job.SourceKind.SAMPLE,
        source_ref=sample,
    )

    upload_id = uuid.uuid4()
    upload_rel = Path(str(user.pk)) / "models" / str(upload_id) / "tiny.gguf"
    upload_bytes = b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16
    upload_sha = _write(Path(settings.QUANTPLAN_UPLOAD_ROOT) / upload_rel, upload_bytes)
    upload = ModelUpload.objects.create(
        id=upload_id,
        user=user,
        filename="tiny.gguf",
        kind=ModelUpload.Kind.GGUF,
        path=str(upload_rel),
        size_bytes=len(upload_bytes),
        sha256=upload_sha,
    )
    token, _raw = api_token_create(user=user, name="alice's laptop")
    from quantjobs.tus import tus_create

    tus_upload = tus_create(
        user=user, length_bytes=10, metadata={"filename": "half.gguf"}
    )
    other_gpu = PlanInput(model=data.model, gpu="a10g", formats=data.formats)
    comparison = plan_services.plans_save(
        user=user,
        name="alice's comparison",
        computed=[
            (data, report),
            (other_gpu, plan_services.plan_compute(data=other_gpu, user=user)),
        ],
    )

    plan_recipes = api.get(f"/api/v1/plans/{plan.pk}/recipes/")
    job_recipes = api.get(f"/api/v1/jobs/{job.pk}/recipes/")
    assert plan_recipes.status_code == 200, plan_recipes.content
    assert job_recipes.status_code == 200, job_recipes.content
    yield Owned(
        plan=plan,
        job=job,
        queued_job=queued_job,
        artifact=artifact,
        upload=upload,
        token=token,
        comparison=comparison,
        tus_upload=tus_upload,
        plan_recipe_id=plan_recipes.json()["recipes"][0]["id"],
        job_recipe_id=job_recipes.json()["recipes"][0]["id"],
    )


@pytest.fixture
def page_client(user: Any) -> Any:
    """A browser-like client signed in as ``user`` (alice)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def other_page_client(other_user: Any) -> Any:
    """A browser-like client signed in as ``other_user`` (bob)."""
    from django.test import Client

    client = Client()
    client.force_login(other_user)
    return client
