"""Job creation's family check: the ``model_type`` of a source, against the method.

The table itself is :mod:`quantjobs.backends.families`; this module finds the
``config.json`` a job's source stands for (a local folder, an uploaded archive,
the sample's Hugging Face form, a Hugging Face id) so that an unsupported family
is refused before the job is queued.
"""

from __future__ import annotations

import json
from pathlib import Path

from quantjobs.backends.families import unsupported_reason
from quantjobs.models import Job

_MAX_CONFIG_BYTES = 5_000_000
_SAMPLE_MODEL_TYPE = "llama"  # SmolLM2, the only bundled sample


def _config_model_type(path: Path) -> str | None:
    config = path / "config.json"
    try:
        if not config.is_file() or config.stat().st_size > _MAX_CONFIG_BYTES:
            return None
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the worker's own checks say what is wrong with it
    model_type = data.get("model_type") if isinstance(data, dict) else None
    return model_type if isinstance(model_type, str) and model_type else None


def source_model_type(*, kind: str, ref: str, user_id: int) -> str | None:
    """``model_type`` of the Hugging Face checkpoint a source is, or None.

    None for GGUF sources (no conversion from Hugging Face) and when the config
    cannot be read here (a Hugging Face id while the hub is unreachable).
    """
    if kind == Job.SourceKind.SAMPLE:
        return _SAMPLE_MODEL_TYPE if ref.endswith("@hf") else None
    if kind == Job.SourceKind.LOCAL:
        path = Path(ref)
        return _config_model_type(path) if path.is_dir() else None
    if kind == Job.SourceKind.UPLOAD:
        from quantjobs.models import ModelUpload

        upload = ModelUpload.objects.filter(pk=ref, user_id=user_id).first()
        if upload is None or upload.kind != ModelUpload.Kind.HF:
            return None
        found = upload.summary.get("model_type")
        return str(found) if found else _config_model_type(Path(upload.abspath))
    if kind == Job.SourceKind.HF:
        from planner.hub import HubError, fetch_config

        try:
            config, _commit = fetch_config(ref)
        except HubError:
            return None
        model_type = config.get("model_type")
        return model_type if isinstance(model_type, str) else None
    return None


def source_family_error(
    *, method: str, kind: str, ref: str, user_id: int
) -> str | None:
    """Why ``method`` cannot quantize this source's family, or None when it can."""
    model_type = source_model_type(kind=kind, ref=ref, user_id=user_id)
    if model_type is None:
        return None
    return unsupported_reason(method, model_type)
