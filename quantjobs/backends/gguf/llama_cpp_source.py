"""The llama.cpp sources of the pinned llama-cpp-python sdist, extracted once.

Converter (``convert_hf_to_gguf.py``, its ``conversion/`` package and its
``gguf-py``) and command-line tools (``llama-perplexity``, ``llama-imatrix``)
must come from the same llama.cpp commit as the quantizer in the installed
wheel, so they are all taken from the sdist of that very llama-cpp-python
version: the copy ``deploy/llama-cpp-wheel.sh`` keeps next to the wheel it
built when there is one, else ``pip download``. The ``vendor/llama.cpp`` tree is
extracted into ``~/.cache/quantplan/llama-cpp-src/<version>/``
(``QUANTPLAN_CACHE_DIR`` overrides the root) under a file lock, into a
temporary directory renamed into place, so a reader never sees half a tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from quantjobs.backends.base import BackendError, LogFn

__all__ = [
    "TOOL_CMAKE_FLAGS",
    "cache_root",
    "ensure_llama_cpp_source",
    "file_lock",
    "llama_cpp_version",
    "sdist_candidates",
]

# How these sources are configured to build llama.cpp's command-line tools
# (llama-perplexity, llama-imatrix, llama-server), whatever the backend: the test
# helpers (tests/llama_tools.py) add the CPU's instruction sets, the GPU check
# (bench/gpu_check.py) CUDA. A target is built only when asked for, so the tools
# not asked for cost nothing. No web UI: it would be fetched from the network or
# built with npm, and the benchmarks need none. tests/llama_tools.py keys its
# build cache on these flags: a change rebuilds its tools once.
TOOL_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",  # llama-server: bench/serving_load.py, gpu_check.py
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DGGML_CCACHE=OFF",
)

# What a complete extraction holds; checked before it is used.
_MARKERS = (
    "CMakeLists.txt",
    "convert_hf_to_gguf.py",
    "conversion/__init__.py",
    "gguf-py/gguf/__init__.py",
)


def cache_root() -> Path:
    """``QUANTPLAN_CACHE_DIR`` or ``~/.cache/quantplan``."""
    base = os.environ.get("QUANTPLAN_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "quantplan"
    )
    return Path(base)


def llama_cpp_version() -> str:
    """The installed llama-cpp-python version (the sdist must be the same one)."""
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise BackendError(
            "llama-cpp-python is not installed on this worker; run `make install`."
        ) from None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sdist_candidates(version: str) -> list[Path]:
    """Local copies of the sdist: ``QUANTPLAN_LLAMA_CPP_SDIST``, then the wheel cache.

    ``QUANTPLAN_LLAMA_CPP_SDIST`` names the file or a folder holding it.
    """
    name = f"llama_cpp_python-{version}.tar.gz"
    found: list[Path] = []
    explicit = os.environ.get("QUANTPLAN_LLAMA_CPP_SDIST")
    if explicit:  # the file, or a folder holding it (the worker images)
        path = Path(explicit)
        found.append(path / name if path.is_dir() else path)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    # deploy/llama-cpp-wheel.sh keeps the sdist in the wheel's own folder.
    for wheels in {cache_root() / "wheels", Path(xdg) / "quantplan" / "wheels"}:
        found.extend(sorted(wheels.glob(f"llama-cpp-python-{version}-*/{name}")))
    return [p for p in found if p.is_file()]


def _download_sdist(version: str, into: Path, log: LogFn, timeout_s: float) -> Path:
    log(f"downloading the llama-cpp-python {version} sdist for its llama.cpp sources")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(into),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"Downloading the llama-cpp-python {version} sdist took over "
            f"{timeout_s:.0f} s."
        ) from None
    archives = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not archives:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendError(
            f"The llama.cpp sources of llama-cpp-python {version} are not on this "
            "worker and could not be downloaded (" + reason + "). Run "
            "deploy/llama-cpp-wheel.sh once with network access, or set "
            "QUANTPLAN_LLAMA_CPP_SDIST to a copy of "
            f"llama_cpp_python-{version}.tar.gz."
        )
    return archives[0]


def _extract(archive: Path, staging: Path) -> None:
    top = archive.name.removesuffix(".tar.gz")
    prefix = f"{top}/vendor/llama.cpp/"
    try:
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                if member.name.startswith(prefix) and len(member.name) > len(prefix):
                    member.name = member.name[len(prefix) :]
                    members.append(member)
            if not members:
                raise BackendError(f"{archive.name} holds no vendor/llama.cpp tree.")
            tar.extractall(staging, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackendError(f"Could not extract {archive.name}: {exc}") from None


def _complete(src: Path) -> bool:
    return all((src / marker).is_file() for marker in _MARKERS)


def ensure_llama_cpp_source(
    log: LogFn = lambda line: None, *, timeout_s: float = 900.0
) -> Path:
    """The extracted ``vendor/llama.cpp`` of the installed llama-cpp-python version.

    Raises BackendError when it is not cached, no local sdist exists and the
    sdist cannot be downloaded.
    """
    version = llama_cpp_version()
    root = cache_root() / "llama-cpp-src"
    src = root / f"llama-cpp-python-{version}"
    if _complete(src):
        return src
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".llama-cpp-python-{version}.lock"):
        if _complete(src):  # another process extracted it while we waited
            return src
        with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
            local = sdist_candidates(version)
            archive = local[0] if local else None
            if archive is None:
                archive = _download_sdist(version, Path(tmp), log, timeout_s)
            log(f"extracting the llama.cpp sources from {archive.name}")
            staging = Path(tmp) / "llama.cpp"
            _extract(archive, staging)
            if not _complete(staging):
                raise BackendError(
                    f"{archive.name} lacks the llama.cpp converter or CMakeLists.txt."
                )
            if src.exists():  # an incomplete tree from an older layout
                shutil.rmtree(src)
            staging.rename(src)
    return src


if __name__ == "__main__":  # deploy/llama-cpp-wheel.sh: extract at install time
    print(ensure_llama_cpp_source(print))
