"""Model sources a job can start from, validated before any work is queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from quantjobs.models import Job

HF_VARIANT = "hf"


class SourceError(ValueError):
    """The source a user named cannot be used; the message says what to change."""


def validate_source(*, kind: str, ref: str, user_id: int) -> tuple[str, str]:
    """Check a source and return its canonical ``ref`` and planner model id (or '')."""
    ref = (ref or "").strip()
    if kind == Job.SourceKind.SAMPLE:
        from quantjobs.samples import SAMPLES

        ref = ref or next(iter(SAMPLES))
        # "<sample>@hf" is the sample converted to a Hugging Face safetensors folder.
        sample_id, _, variant = ref.partition("@")
        if sample_id not in SAMPLES or variant not in ("", HF_VARIANT):
            known = ", ".join(f"{s}, {s}@{HF_VARIANT}" for s in sorted(SAMPLES))
            raise SourceError(f"Unknown sample {ref!r}; bundled samples: {known}.")
        return ref, SAMPLES[sample_id].model_id
    if kind == Job.SourceKind.LOCAL:
        return _validate_local(ref), ""
    if kind == Job.SourceKind.HF:
        from planner.hub import validate_hf_id

        try:
            return validate_hf_id(ref), ""
        except ValueError as exc:
            raise SourceError(str(exc)) from None
    if kind == Job.SourceKind.UPLOAD:
        from quantjobs.models import ModelUpload

        upload = ModelUpload.objects.filter(
            pk=_uuid_or_none(ref), user_id=user_id
        ).first()
        if upload is None:
            raise SourceError("No such upload: upload the model file first.")
        if upload.status == ModelUpload.Status.CHECKING:
            raise SourceError(
                "That upload is still being checked; start the job once it shows "
                "ready (GET /api/v1/uploads/)."
            )
        if upload.status == ModelUpload.Status.REFUSED:
            raise SourceError(f"That upload was refused: {upload.reason}")
        return str(upload.pk), upload.model_id
    raise SourceError(f"Unknown source kind {kind!r}; use sample, local, upload or hf.")


def _uuid_or_none(text: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _validate_local(ref: str) -> str:
    if not ref:
        raise SourceError("Give the path of a .gguf file or a model directory.")
    roots = [Path(p).resolve() for p in settings.QUANTPLAN_LOCAL_MODEL_DIRS]
    if not roots:
        raise SourceError(
            "Local paths are disabled on this server; upload the model instead, or ask "
            "the operator to set QUANTPLAN_LOCAL_MODEL_DIRS."
        )
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = roots[0] / path
    path = path.resolve()
    if not any(path == root or root in path.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise SourceError(f"{ref}: local models must live under {allowed}.")
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory.")
    if path.is_file() and path.suffix.lower() != ".gguf":
        raise SourceError(
            f"{path.name}: only .gguf files or Hugging Face safetensors directories "
            "can be used (pickle files such as .bin/.pt run code when loaded)."
        )
    return str(path)


def child_source_for(job: Job) -> dict[str, Any]:
    """The source description the worker's child process resolves."""
    if job.source_kind == Job.SourceKind.SAMPLE:
        sample_id, _, variant = job.source_ref.partition("@")
        return {"kind": "sample", "ref": sample_id, "as_hf": variant == HF_VARIANT}
    if job.source_kind == Job.SourceKind.LOCAL:
        return {"kind": "path", "path": job.source_ref}
    if job.source_kind == Job.SourceKind.UPLOAD:
        from quantjobs.models import ModelUpload

        upload = ModelUpload.objects.get(pk=job.source_ref)
        return {"kind": "path", "path": str(upload.abspath)}
    if job.source_kind == Job.SourceKind.HF:
        return {"kind": "hf", "ref": job.source_ref, "revision": job.source_revision}
    raise SourceError(f"Unknown source kind {job.source_kind!r}.")
