"""A ``ModelSpec`` for every model source: GGUF files (split or not) and config.json.

GGUF headers are parsed by the sandboxed inspector (a resource-limited child
process); the planner engine only sees the plain data it returns. A config.json
is read with a size limit. Every problem is a ``ModelSpecError`` whose message
says what is wrong and what to change.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from planner import engine
from planner.model_sources import ModelSourceError

MAX_CONFIG_BYTES = 1_000_000
INSPECT_TIMEOUT_S = 60.0

# llama.cpp's split naming (gguf-split, llama_split_path): NAME-00001-of-00003.gguf
SPLIT_NAME = re.compile(
    r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE
)


class ModelSpecError(ModelSourceError):
    """A model whose shape cannot be read; the message says what to change."""


def gguf_parts(path: Path) -> list[Path]:
    """All files of the model ``path`` belongs to: itself, or every part of a split."""
    match = SPLIT_NAME.match(path.name)
    if match is None:
        return [path]
    count = int(match.group("count"))
    if count < 1 or int(match.group("no")) < 1 or int(match.group("no")) > count:
        raise ModelSpecError(
            f"{path.name}: the part number does not fit a split of {count} files."
        )
    stem = match.group("stem")
    parts = [
        path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf")
        for i in range(1, count + 1)
    ]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise ModelSpecError(
            f"{path.name} is part of a model split into {count} files, but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f"next to it in {path.parent}; put every part in the same folder."
        )
    return parts


def spec_from_gguf(
    path: Path, *, model_id: str | None = None, name: str | None = None
) -> engine.ModelSpec:
    """Read a GGUF model (every part of a split one) in the sandbox; ModelSpecError if bad."""
    from quantjobs.backends.base import BackendError
    from quantjobs.backends.gguf_inspect import inspect_gguf

    parts = gguf_parts(Path(path))
    infos = []
    for part in parts:
        try:
            infos.append(inspect_gguf(part, timeout_s=INSPECT_TIMEOUT_S))
        except BackendError as exc:
            raise ModelSpecError(str(exc)) from None
    return spec_from_gguf_infos(parts, infos, model_id=model_id, name=name)


def spec_from_gguf_infos(
    parts: list[Path],
    infos: list[Any],
    *,
    model_id: str | None = None,
    name: str | None = None,
) -> engine.ModelSpec:
    """A spec from the inspector's reports on every part of a GGUF model."""
    first = infos[0]
    if len(parts) == 1 and first.split_count > 1:
        raise ModelSpecError(
            f"{parts[0].name} is part {first.split_no + 1} of a model split into "
            f"{first.split_count} files; name the files NAME-00001-of-"
            f"{first.split_count:05d}.gguf ... as llama.cpp's gguf-split does, and "
            "give the first."
        )
    for i, (part, info) in enumerate(zip(parts, infos, strict=True)):
        if len(parts) > 1 and (info.split_no != i or info.split_count != len(parts)):
            raise ModelSpecError(
                f"{part.name}: its metadata says part {info.split_no + 1} of "
                f"{info.split_count}, not part {i + 1} of {len(parts)}; the split "
                "files do not belong together."
            )
    tensors: list[engine.GgufTensor] = []
    for info in infos:
        for tensor_name, shape in info.tensor_shapes.items():
            tensors.append(
                engine.GgufTensor(
                    tensor_name, info.tensor_types[tensor_name], tuple(shape)
                )
            )
    label = name or first.name or _display_stem(parts[0])
    try:
        return engine.model_spec_from_gguf(
            first.metadata,
            tensors,
            model_id=model_id or label,
            name=label,
            file_bytes=sum(info.size_bytes for info in infos),
            metadata_bytes=_metadata_bytes(first),
        )
    except engine.SpecError as exc:
        raise ModelSpecError(f"{parts[0].name}: {exc}") from None


def _metadata_bytes(info: Any) -> int:
    """Bytes of the first file's key/value block: its header less the tensor infos."""
    infos = sum(
        8 + len(n.encode()) + 4 + 8 * len(shape) + 4 + 8
        for n, shape in info.tensor_shapes.items()
    )
    # data_offset is the header's end rounded up to the alignment: close enough.
    return max(0, int(info.data_offset) - 24 - infos)


def _display_stem(path: Path) -> str:
    match = SPLIT_NAME.match(path.name)
    return match.group("stem") if match else path.stem


def read_config(path: Path) -> dict[str, Any]:
    """config.json of a model folder, size-limited; ModelSpecError if unreadable."""
    config_path = path / "config.json"
    try:
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelSpecError(f"{config_path.name} is larger than 1 MB.")
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSpecError(f"{path.name} has no config.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelSpecError(f"{path.name}/config.json cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ModelSpecError(f"{path.name}/config.json is not a JSON object.")
    return data


def model_name_from_config(config: dict[str, Any], fallback: str) -> str:
    """The model a config describes: its ``_name_or_path`` (last part), else ``fallback``."""
    for key in ("_name_or_path", "name_or_path", "model_name"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip().rstrip("/")
            # A local path names a folder on someone's disk; keep its last part.
            return (text.rsplit("/", 1)[-1] if text.startswith(("/", ".")) else text)[
                :200
            ]
    return fallback[:200]


def spec_from_config(
    config: dict[str, Any], *, model_id: str, name: str | None = None
) -> engine.ModelSpec:
    """A spec from a config.json dict; ModelSpecError naming the field if bad."""
    try:
        return engine.model_spec_from_config(config, model_id=model_id, name=name)
    except engine.SpecError as exc:
        raise ModelSpecError(f"config.json: {exc}") from None


def spec_from_hf_dir(path: Path, *, model_id: str | None = None) -> engine.ModelSpec:
    """A spec from a Hugging Face model folder's config.json."""
    config = read_config(path)
    name = model_name_from_config(config, path.name)
    return spec_from_config(config, model_id=model_id or name, name=name)


def spec_from_path(path: Path) -> engine.ModelSpec:
    """A spec for a local model: a .gguf file (or split set) or a safetensors folder."""
    if path.is_dir():
        return spec_from_hf_dir(path)
    if path.suffix.lower() == ".gguf":
        return spec_from_gguf(path)
    raise ModelSpecError(f"{path.name}: not a .gguf file or a model folder.")


_sample_lock = threading.Lock()
_sample_cache: dict[tuple[str, int, int], engine.ModelSpec] = {}


def spec_for_sample(sample_id: str) -> engine.ModelSpec:
    """The bundled sample's spec, read from its GGUF once per file version."""
    from quantjobs.samples import SampleError, sample_path

    try:
        path = sample_path(sample_id)
    except SampleError as exc:
        raise ModelSpecError(str(exc)) from None
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _sample_lock:
        cached = _sample_cache.get(key)
    if cached is None:
        cached = spec_from_gguf(path, model_id=sample_id)
        with _sample_lock:
            _sample_cache[key] = cached
    return cached


def spec_to_json(spec: engine.ModelSpec, *, source: str) -> dict[str, Any]:
    """The spec as stored on a job or upload, with where it was read from."""
    return {**engine.model_spec_to_dict(spec), "source": source}


def spec_from_json(data: dict[str, Any]) -> engine.ModelSpec:
    """Read back ``spec_to_json``; ModelSpecError if it is not that."""
    try:
        return engine.model_spec_from_dict(data)
    except engine.SpecError as exc:
        raise ModelSpecError(str(exc)) from None


def spec_json_for_source(*, kind: str, ref: str, user_id: int) -> dict[str, Any]:
    """The spec of a job's (validated) source as stored on the job, when known now.

    A Hugging Face source is read by the worker once downloaded (``{}`` here). A
    source whose shape cannot be read gets ``{"error": ...}``: the job still runs,
    and its results say why they carry no projection.
    """
    from quantjobs.models import Job, ModelUpload

    try:
        if kind == Job.SourceKind.SAMPLE:
            sample_id, _, _variant = ref.partition("@")
            return spec_to_json(spec_for_sample(sample_id), source="gguf metadata")
        if kind == Job.SourceKind.UPLOAD:
            upload = ModelUpload.objects.filter(pk=ref, user_id=user_id).first()
            return dict(upload.model_spec) if upload is not None else {}
        if kind == Job.SourceKind.LOCAL:
            path = Path(ref)
            spec = spec_from_path(path)
            return spec_to_json(
                spec, source="config.json" if path.is_dir() else "gguf metadata"
            )
    except ModelSpecError as exc:
        return {"error": str(exc)}
    return {}
