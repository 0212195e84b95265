"""Hugging Face model directories as a job source: download, then check before use.

A source directory is trusted with nothing: it must hold ``config.json`` and
safetensors weights (plus the shard index when sharded). Pickle weights are
refused because unpickling runs arbitrary code; ``auto_map`` in config.json is
refused because it asks for the repository's own Python code. Safetensors headers
are read with the ``safetensors`` library, which bounds and checks them (sizes,
offsets, dtypes) before anything maps the tensors.

Importing this module imports no torch (json, safetensors and huggingface_hub on use).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from quantjobs.backends.base import BackendError, LogFn

MAX_HEADER_BYTES = 100 * 1000 * 1000  # the safetensors library's own limit
MAX_JSON_BYTES = 50 * 1000 * 1000  # config.json / index: far above real ones
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
INDEX_NAME = "model.safetensors.index.json"
DEFAULT_ALLOW_PATTERNS = (
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "*.safetensors",
    "*.safetensors.index.json",
    "special_tokens_map.json",
)
# Bits per element of every dtype the safetensors format defines at byte width.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}
_SHA = re.compile(r"^[0-9a-f]{40}$")
_UNREACHABLE = (
    "Hugging Face is not reachable from this worker (it is offline or has no "
    "network access). Upload the model directory instead, or run the job on a "
    "worker that can reach huggingface.co."
)


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a checked safetensors header declares."""

    path: Path
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape)
    data_bytes: int


@dataclass(frozen=True)
class HfSource:
    """A checked Hugging Face directory."""

    path: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]
    parameter_count: int
    weight_bytes: int

    @property
    def model_type(self) -> str:
        """``model_type`` from config.json (``llama``, ``qwen2``, ...)."""
        return str(self.config.get("model_type", ""))


@dataclass(frozen=True)
class HfDownload:
    """A downloaded snapshot, pinned to the commit it came from."""

    path: Path
    commit_sha: str
    source: HfSource


def validate_hf_dir(path: Path, check_architecture: bool = True) -> HfSource:
    """Check a local directory as a model source; BackendError says what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise BackendError(f"Model directory {path} does not exist.")
    names = {p.name for p in path.iterdir()}
    pickles = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise BackendError(
            f"The model directory contains pickle files ({', '.join(pickles)}). "
            "Loading pickle runs any code stored inside it, so they are refused: "
            "remove them and provide the weights as .safetensors."
        )
    if "config.json" not in names:
        raise BackendError("The model directory has no config.json.")
    config = _read_json(path / "config.json", "config.json")
    if not isinstance(config, dict):
        raise BackendError("config.json is not a JSON object.")
    _check_config(config, check_architecture)

    files = _weight_files(path, names)
    headers = [read_safetensors_header(f) for f in files]
    if INDEX_NAME in names:
        _check_index_names(path, headers)
    n_params = sum(prod(shape) for h in headers for _, shape in h.tensors.values())
    if n_params == 0:
        raise BackendError("The safetensors files hold no tensors.")
    return HfSource(
        path=path,
        config=config,
        weight_files=tuple(files),
        parameter_count=n_params,
        weight_bytes=sum(h.data_bytes for h in headers),
    )


def _check_config(config: dict[str, Any], check_architecture: bool) -> None:
    if "auto_map" in config:
        raise BackendError(
            "config.json has an auto_map: this model needs the repository's own "
            "Python code (trust_remote_code), which workers never run. Use a model "
            "whose architecture is built into transformers."
        )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise BackendError("config.json has no model_type.")
    if check_architecture:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if model_type not in CONFIG_MAPPING_NAMES:
            raise BackendError(
                f"transformers does not know the architecture {model_type!r}; "
                "only architectures built into transformers can be loaded."
            )


def _weight_files(path: Path, names: set[str]) -> list[Path]:
    tensors = sorted(n for n in names if n.endswith(".safetensors"))
    if INDEX_NAME in names:
        index = _read_json(path / INDEX_NAME, INDEX_NAME)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise BackendError(f"{INDEX_NAME} has no weight_map.")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not isinstance(shard, str) or Path(shard).name != shard:
                raise BackendError(f"{INDEX_NAME} names an invalid shard {shard!r}.")
            if not shard.endswith(".safetensors"):
                raise BackendError(
                    f"{INDEX_NAME} points at {shard!r}, which is not safetensors."
                )
            if shard not in names:
                raise BackendError(f"Shard {shard} listed in {INDEX_NAME} is missing.")
        return [path / s for s in shards]
    if not tensors:
        raise BackendError(
            "The model directory has no .safetensors weights; only safetensors "
            "are accepted (pickle .bin/.pt files can run code when loaded)."
        )
    if "model.safetensors" in tensors:
        return [path / "model.safetensors"]
    if len(tensors) == 1:
        return [path / tensors[0]]
    raise BackendError(
        f"Found {len(tensors)} safetensors files but no {INDEX_NAME} saying how "
        "they form one model."
    )


def _check_index_names(path: Path, headers: Sequence[SafetensorsHeader]) -> None:
    index = _read_json(path / INDEX_NAME, INDEX_NAME)
    by_file = {h.path.name: h.tensors for h in headers}
    for tensor, shard in index["weight_map"].items():
        if tensor not in by_file.get(shard, {}):
            raise BackendError(
                f"{INDEX_NAME} places {tensor} in {shard}, which does not hold it."
            )


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Read and check one safetensors header with the ``safetensors`` library.

    The library bounds the header (100 MB), parses it, and checks that the tensors
    lie back to back, that each spans what its dtype and shape need, and that they
    cover the data section exactly; only the header is read. Its errors become a
    BackendError that says what is wrong with which file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path.name} is not a regular file.")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():
                view = handle.get_slice(name)
                shape = tuple(int(d) for d in view.get_shape())
                tensors[name] = (str(view.get_dtype()), shape)
    except SafetensorError as exc:
        raise BackendError(_header_problem(path.name, str(exc))) from None
    for name, (dtype, _shape) in tensors.items():
        if dtype not in DTYPE_BITS:
            raise BackendError(
                f"{path.name}: tensor {name} has unknown dtype {dtype!r}."
            )
    data_bytes = sum(
        prod(shape) * DTYPE_BITS[dtype] // 8 for dtype, shape in tensors.values()
    )
    return SafetensorsHeader(path=path, tensors=tensors, data_bytes=data_bytes)


# What the safetensors library's errors mean for the user, by a phrase of each.
_HEADER_PROBLEMS = (
    (
        "header too large",
        "{name} declares a header over the safetensors limit of {limit} bytes; "
        "the file is corrupt or not safetensors.",
    ),
    ("header too small", "{name} is too short to be safetensors."),
    ("invalid header length", "{name} is truncated (header past end of file)."),
    ("unknown variant", "{name} has a tensor with an unknown dtype: {detail}"),
    (
        "invalid offset",
        "{name}: a tensor starts at the wrong byte (overlapping or gapped tensors): "
        "{detail}",
    ),
    (
        "invalid shape, data type, or offset",
        "{name}: a tensor's byte span is not the size its dtype and shape needs.",
    ),
    (
        "not fully covered",
        "{name}: the tensors do not cover the data section exactly: data past the "
        "end of the file (truncated file?) or bytes no tensor uses.",
    ),
    (
        "invalid value",
        "{name} has an invalid shape or data_offsets (not non-negative integers): "
        "{detail}",
    ),
)


def _header_problem(name: str, error: str) -> str:
    detail = error.strip().removeprefix("Error while deserializing header: ")
    lowered = detail.lower()
    for phrase, message in _HEADER_PROBLEMS:
        if phrase in lowered:
            return message.format(name=name, limit=MAX_HEADER_BYTES, detail=detail)
    return f"{name} has an unreadable header: {detail}"


def _read_json(path: Path, label: str) -> Any:
    if not path.is_file():
        raise BackendError(f"{label} is not a regular file.")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise BackendError(f"{label} is larger than {MAX_JSON_BYTES} bytes.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendError(f"{label} is not valid JSON: {exc}") from None


def download_hf(
    repo_id: str,
    revision: str | None,
    dest: Path,
    allow_patterns: Sequence[str] = DEFAULT_ALLOW_PATTERNS,
    token: str | None = None,
    log: LogFn | None = None,
) -> HfDownload:
    """Download a model repository at one commit into ``dest`` and check it.

    ``revision`` (branch, tag or sha; ``None`` = the default branch) is resolved
    to a commit sha first and the files are fetched at that sha, so the job's
    record names exactly the weights it used even if the branch moves meanwhile.
    """
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi(token=token).model_info(repo_id, revision=revision)
        sha = info.sha
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise BackendError(
                f"Hugging Face returned no commit for {repo_id}@{revision}."
            )
        if log:
            log(f"Resolved {repo_id}@{revision or 'main'} to commit {sha}")
        snapshot_download(
            repo_id,
            revision=sha,
            local_dir=str(dest),
            allow_patterns=list(allow_patterns),
            token=token,
        )
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped to a user message below
        raise _hub_error(exc, repo_id, revision) from exc
    if log:
        log(f"Downloaded {repo_id} at {sha} into {dest}")
    return HfDownload(path=Path(dest), commit_sha=sha, source=validate_hf_dir(dest))


def _hub_error(exc: Exception, repo_id: str, revision: str | None) -> BackendError:
    """Translate huggingface_hub / requests failures into what the user can do."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return BackendError(
            f"{repo_id} is gated: accept its licence on huggingface.co and give "
            "the worker a token with access."
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return BackendError(
            f"Hugging Face has no model {repo_id!r} (or it is private and the "
            "worker's token cannot see it)."
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return BackendError(f"{repo_id} has no revision {revision!r}.")
    if isinstance(exc, errors.HFValidationError):
        return BackendError(f"{repo_id!r} is not a valid Hugging Face model id.")
    if isinstance(
        exc, errors.OfflineModeIsEnabled | errors.LocalEntryNotFoundError
    ) or _is_network_error(exc):
        return BackendError(_UNREACHABLE)
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return BackendError(
            f"Hugging Face answered HTTP {status} for {repo_id}; try again later."
        )
    return BackendError(f"Downloading {repo_id} failed: {exc}")


def _is_network_error(exc: BaseException) -> bool:
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            requests.ConnectionError
            | requests.Timeout
            | ConnectionError
            | TimeoutError,
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
