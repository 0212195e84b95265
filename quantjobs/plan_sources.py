"""What quantjobs lends the planner: readers of a user's uploads and of the local
model folders, registered with ``planner/model_sources.py`` when Django starts, so
the planner plans them without importing quantjobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner import engine
from planner.model_sources import ModelSources, model_sources_register
from quantjobs.modelspec import ModelSpecError, spec_from_json, spec_from_path
from quantjobs.selectors import upload_find_for_user
from quantjobs.sources import local_model_path

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def spec_for_upload(
    *, user: AbstractBaseUser | None, upload_id: str
) -> engine.ModelSpec:
    """The spec of one of the user's uploads, read when it was checked; ModelSpecError
    saying what to do when there is no such upload or it is not ready."""
    found = upload_find_for_user(user=user, upload_id=upload_id)
    if found is None:
        raise ModelSpecError(
            "No such upload: pick one of your uploaded models (upload it first)."
        )
    label = found.name or found.filename
    if found.status != found.Status.READY:
        why = (
            "it is still being checked; plan it once it shows ready"
            if found.status == found.Status.CHECKING
            else f"it was refused: {found.reason}"
        )
        raise ModelSpecError(f"{label} cannot be planned: {why}")
    stored = found.model_spec or {}
    if "error" in stored or not stored:
        why = stored.get("error") or "its shape was not read when it was uploaded"
        raise ModelSpecError(f"{label} cannot be planned: {why}")
    return spec_from_json(stored)


def plan_sources_register() -> None:
    """Give the planner these readers (``QuantjobsConfig.ready``)."""
    model_sources_register(
        ModelSources(
            upload_spec=spec_for_upload,
            local_path=local_model_path,
            path_spec=spec_from_path,
        )
    )
