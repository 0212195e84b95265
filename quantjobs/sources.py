"""Model sources a job can start from, validated before any work is queued."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from planner.model_sources import ModelSourceError
from quantjobs.models import Job

HF_VARIANT = "hf"


class SourceError(ModelSourceError):
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


def local_model_path(ref: str) -> Path:
    """A path inside the local model folders (QUANTPLAN_LOCAL_MODEL_DIRS); SourceError if not."""
    try:
        return Path(_validate_local(ref))
    except (ValueError, RuntimeError, OSError) as exc:  # NUL bytes, "~nobody", ...
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{ref[:200]!r} is not a usable path: {exc}.") from None


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


@dataclass(frozen=True)
class SourceModel:
    """The model a job's source holds, as far as Quantplan can tell before it runs."""

    name: str  # what pages, logs and job names call it
    ident: str  # slug base for served model names in recipes
    keys: frozenset[str]  # lower-case catalog and Hugging Face ids it answers to
    quantization: str | None  # "Q4_1" when the source is known to be quantized


def _catalog_entry(model_id: str) -> tuple[str, str, frozenset[str]]:
    """(display name or '', Hugging Face id or '', lower-case ids) of a catalog model
    id or a Hugging Face id."""
    from planner.engine.catalog import CatalogError, get_model, load_models

    wanted = model_id.strip().lower()
    if not wanted:
        return "", "", frozenset()
    try:
        entry = get_model(model_id)
    except CatalogError:
        entry = next(
            (m for m in load_models() if m.hf_id and m.hf_id.lower() == wanted), None
        )
    if entry is None:
        hf_id = model_id.strip() if model_id.count("/") == 1 else ""
        return "", hf_id, frozenset({wanted})
    keys = {entry.id.lower(), wanted}
    if entry.hf_id:
        keys.add(entry.hf_id.lower())
    return entry.name, entry.hf_id, frozenset(keys)


def _catalog_keys(model_id: str) -> tuple[str, frozenset[str]]:
    """(display name or '', lower-case ids) of a catalog model id or Hugging Face id."""
    name, _hf_id, keys = _catalog_entry(model_id)
    return name, keys


def source_model(*, kind: str, ref: str, user_id: int | None = None) -> SourceModel:
    """Name and ids of the model a (validated) source holds."""
    from quantjobs.backends.reference import quantized_type

    if kind == Job.SourceKind.SAMPLE:
        from quantjobs.samples import SAMPLES

        sample_id, _, variant = (ref or next(iter(SAMPLES))).partition("@")
        spec = SAMPLES.get(sample_id)
        if spec is None:
            return SourceModel(ref, ref, frozenset(), None)
        catalog_name, keys = _catalog_keys(spec.model_id)
        # The model's name; that the file is a Q4_1 is said as its quantization.
        name = catalog_name or spec.name
        quantization = spec.format.removeprefix("gguf-")
        return SourceModel(name, spec.model_id, keys, quantization)
    if kind == Job.SourceKind.HF:
        _name, keys = _catalog_keys(ref)
        return SourceModel(ref, ref, keys | {ref.lower()}, None)
    if kind == Job.SourceKind.UPLOAD:
        from quantjobs.models import ModelUpload

        upload = ModelUpload.objects.filter(pk=_uuid_or_none(ref)).first()
        if upload is None or (user_id is not None and upload.user_id != user_id):
            return SourceModel("an uploaded model", "model", frozenset(), None)
        stem = Path(upload.filename).name.removesuffix(".gguf")
        catalog_name, keys = _catalog_keys(upload.model_id)
        if upload.name:  # a plan made from this upload names it so
            keys = keys | {upload.name.lower()}
        file_type = (upload.summary or {}).get("file_type")
        quantization = quantized_type(file_type) if file_type else None
        held = upload.name  # general.name or the config's
        return SourceModel(
            catalog_name or held or upload.model_id or upload.filename,
            upload.model_id or held or stem,
            keys,
            quantization,
        )
    if kind == Job.SourceKind.LOCAL:
        path = Path(ref)
        return SourceModel(
            path.name, path.name.removesuffix(".gguf"), frozenset(), None
        )
    return SourceModel(ref or "model", ref or "model", frozenset(), None)


@dataclass(frozen=True)
class PlannedModel:
    """The model a plan was made for."""

    name: str
    hf_id: str  # its Hugging Face id, or '' when the plan does not know one
    keys: frozenset[str]  # lower-case catalog and Hugging Face ids


def plan_model(*, model_id: str) -> PlannedModel:
    """Name, Hugging Face id and ids of the model a plan was made for."""
    if model_id.strip().lower() in ("", "custom"):
        return PlannedModel("a custom model", "", frozenset())
    name, hf_id, keys = _catalog_entry(model_id)
    return PlannedModel(name or model_id, hf_id, keys)
