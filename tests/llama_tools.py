"""llama.cpp's own command-line tools, built from the sources llama-cpp-python vendors.

For tests and benchmarks only (no job runs them): ``llama-perplexity`` is the
independent cross-check of our perplexity scoring (tests/quantjobs/backends/
test_llama_eval.py, bench/eval_agreement.py) and ``llama-imatrix`` of our
importance matrices (test_gguf_imatrix.py); ``llama-server`` is what
bench/serving_load.py loads. None ships in the wheel, so they are built once with cmake from the llama.cpp inside the pinned
llama-cpp-python sdist (about 4 minutes on 2 cores) and cached; the sources are
the extraction the converter uses too (see llama_cpp_source).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from quantjobs.backends.base import BackendError, LogFn
from quantjobs.backends.gguf.llama_cpp_source import (
    TOOL_CMAKE_FLAGS,
    ensure_llama_cpp_source,
    file_lock,
)

_CMAKE_FLAGS = (
    # Instruction sets: the ones the installed library was built with (see
    # _isa_flags), never -march=native, whose AMX kernels crash on our virtual
    # machines and whose other kernels would sum in another order than ours.
    "-DGGML_NATIVE=OFF",
    *TOOL_CMAKE_FLAGS,
)


# llama_print_system_info() feature names -> the cmake options that enable them
# on top of GGML_NATIVE=OFF (which already gives AVX, AVX2, BMI2, FMA, F16C).
_ISA_OPTIONS = {
    "AVX512": "-DGGML_AVX512=ON",
    "AVX512_VBMI": "-DGGML_AVX512_VBMI=ON",
    "AVX512_VNNI": "-DGGML_AVX512_VNNI=ON",
    "AVX512_BF16": "-DGGML_AVX512_BF16=ON",
}


def _isa_flags() -> tuple[str, ...]:
    """The cmake options for the instruction sets the installed llama.cpp uses."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    enabled = set(re.findall(r"(\w+) = 1", info))
    return tuple(opt for name, opt in _ISA_OPTIONS.items() if name in enabled)


def _build_flags() -> tuple[str, ...]:
    return (*_CMAKE_FLAGS, *_isa_flags())


def _cache_root() -> Path:
    base = os.environ.get("QUANTPLAN_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "quantplan"
    )
    version = importlib.metadata.version("llama-cpp-python")
    flags = hashlib.sha256(" ".join(_build_flags()).encode()).hexdigest()[:8]
    return Path(base) / "llama-perplexity" / f"llama-cpp-python-{version}-{flags}"


def _fetch_llama_cpp_source(root: Path, log: LogFn, timeout_s: float) -> Path:
    legacy = root / "src"  # where builds before the shared extraction kept it
    if (legacy / "CMakeLists.txt").is_file():
        return legacy
    return ensure_llama_cpp_source(log, timeout_s=timeout_s)


_TOOLS = ("llama-perplexity", "llama-imatrix", "llama-server")


def ensure_llama_tool(
    name: str, log: LogFn = lambda line: None, *, timeout_s: float = 1800.0
) -> Path:
    """Path of a llama.cpp tool built from the same llama.cpp as llama-cpp-python.

    ``name`` is ``llama-perplexity``, ``llama-imatrix`` or ``llama-server``. Built once with cmake
    (that target only) and cached under ``~/.cache/quantplan/llama-perplexity/``
    (``QUANTPLAN_CACHE_DIR`` overrides); about 4 minutes on 2 cores the first time.
    """
    if name not in _TOOLS:
        raise BackendError(f"Unknown llama.cpp tool {name!r}.")
    root = _cache_root()
    binary = root / "build" / "bin" / name
    if binary.is_file():
        return binary
    if shutil.which("cmake") is None:
        raise BackendError(f"cmake is not installed; it is needed to build {name}.")
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        if binary.is_file():  # another process built it while we waited
            return binary
        deadline = time.monotonic() + timeout_s
        src = _fetch_llama_cpp_source(root, log, timeout_s)
        build = root / "build"
        steps = [
            ["cmake", "-S", str(src), "-B", str(build), *_build_flags()],
            ["cmake", "--build", str(build), "--target", name, "-j",
             str(os.cpu_count() or 2)],
        ]  # fmt: skip
        for step in steps:
            log("running " + " ".join(step[:4]) + " ...")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"Building {name} took too long.")
            done = subprocess.run(step, capture_output=True, text=True, timeout=left)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                raise BackendError(f"Building {name} failed: " + " | ".join(tail))
    if not binary.is_file():
        raise BackendError(f"The {name} build finished without a binary.")
    return binary


def ensure_llama_perplexity(
    log: LogFn = lambda line: None, *, timeout_s: float = 1800.0
) -> Path:
    """Path of llama.cpp's ``llama-perplexity`` (see :func:`ensure_llama_tool`)."""
    return ensure_llama_tool("llama-perplexity", log, timeout_s=timeout_s)


_FINAL_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+)")


def llama_perplexity_reference(
    path: Path,
    text: str,
    n_ctx: int,
    *,
    threads: int = 2,
    max_chunks: int | None = None,
    timeout_s: float = 600.0,
) -> float:
    """Perplexity of ``path`` on ``text`` as computed by llama.cpp's ``llama-perplexity``.

    ``-b n_ctx`` keeps one sequence per batch (the tool's default batch of 2048
    would pack four 512-token chunks together), and ``--chunks`` matches
    ``max_chunks``, so it scores the same positions as ``quantjobs.backends.llama_eval.score_tokens``.
    """
    binary = ensure_llama_perplexity()
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "eval.txt"
        # The tool drops one trailing newline from the file; write none.
        text_file.write_text(text.rstrip("\n"), encoding="utf-8")
        cmd = [
            str(binary), "-m", str(path), "-f", str(text_file), "-c", str(n_ctx),
            "-b", str(n_ctx), "-t", str(threads), "-ngl", "0",
        ]  # fmt: skip
        if max_chunks:
            cmd += ["--chunks", str(max_chunks)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    output = done.stdout + done.stderr
    match = _FINAL_PPL.search(output)
    if done.returncode != 0 or match is None:
        tail = " | ".join(output.strip().splitlines()[-5:])
        raise BackendError(f"llama-perplexity failed (exit {done.returncode}): {tail}")
    return float(match.group(1))
