"""Validate an untrusted GGUF file in a separate, resource-limited process.

GGUF headers carry lengths and counts that readers trust: gguf-py's
``GGUFReader`` memory-maps the file and believes every length, and a malformed
file can make llama.cpp abort the whole process (SIGABRT). So a file we did not
write is first parsed here, by a reader that checks every length against the
bytes actually left in the file, inside a child process with address-space,
data and CPU limits. Only when those checks pass does the child hand the file
to gguf-py (and, if asked, to llama.cpp with ``vocab_only``) as a cross-check.

The bounded parser itself is :mod:`quantjobs.backends.gguf.header`. The chat
template (``tokenizer.chat_template``) is never rendered or compiled:
it is reported, and refused when it reaches for Python internals.

Run as ``python -m quantjobs.backends.gguf_inspect --child PATH``; the parent
side is :func:`inspect_gguf`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantjobs.backends.base import BackendError
from quantjobs.backends.gguf.header import (
    ArraySummary,
    GgufRejected,
    parse_gguf_header,
    template_warnings,
)

MAX_TEMPLATE_BYTES = 1 << 20

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "GgufInfo",
    "inspect_gguf",
    "parse_gguf_header",
    "template_warnings",
]

DEFAULT_MAX_MEMORY_BYTES = 2 << 30
"""Private memory the validating child may use (the file's mapping comes on top)."""

# Headroom for the interpreter, numpy and llama.cpp's shared libraries, which
# reserve address space they never touch.
_ADDRESS_SPACE_SLACK_BYTES = 1 << 30


@dataclass(frozen=True)
class GgufInfo:
    """What a validated GGUF file holds, without its tensor data."""

    path: str
    size_bytes: int
    version: int
    architecture: str
    name: str | None
    tensor_count: int
    kv_count: int
    alignment: int
    data_offset: int
    file_type: int | None
    file_type_name: str | None
    types_histogram: dict[str, int]
    parameter_count: int
    tensor_data_bytes: int
    context_length: int | None
    vocab_size: int | None
    metadata: dict[str, Any]  # scalars and small arrays; big arrays summarised
    tensor_types: dict[str, str]  # tensor name -> ggml type name
    chat_template: str | None = None
    chat_template_warnings: tuple[str, ...] = ()
    llama_check: dict[str, Any] | None = None  # what llama.cpp said, if asked
    notes: tuple[str, ...] = field(default=())
    # tensor name -> shape in ggml order (ne0 first), for sizing the model
    tensor_shapes: dict[str, list[int]] = field(default_factory=dict)
    split_no: int = 0  # which part of a split model (0: the first, or not split)
    split_count: int = 0  # parts of a split model (0: not split)


def _summarise(metadata: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key, value in metadata.items():
        if key == "tokenizer.chat_template":
            summary[key] = (
                f"<{len(value):,} characters>" if isinstance(value, str) else value
            )
        elif isinstance(value, ArraySummary):
            if value.values is not None:
                summary[key] = value.values
            else:
                summary[key] = f"<array of {value.length:,} {value.item_type}>"
        elif isinstance(value, str) and len(value) > 1024:
            summary[key] = value[:1024] + "…"
        else:
            summary[key] = value
    return summary


def _file_type_name(file_type: int | None) -> str | None:
    if file_type is None:
        return None
    from gguf.constants import LlamaFileType

    try:
        return (
            LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        )
    except ValueError:
        return f"unknown ({file_type})"


def _cross_check_with_gguf_py(path: Path, header: dict[str, Any]) -> None:
    # Our bounds checks passed, so gguf-py's trusting reader is safe to run: it
    # is the reference reader, and a disagreement means one of us misparses.
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    if len(reader.tensors) != header["tensor_count"]:
        raise GgufRejected(
            "gguf-py reads a different tensor count; the file is inconsistent."
        )
    for ours, theirs in zip(header["tensors"], reader.tensors, strict=True):
        name, ggml_type, _dims, offset = ours
        if (
            theirs.name != name
            or int(theirs.tensor_type) != ggml_type
            or theirs.data_offset != header["data_offset"] + offset
        ):
            raise GgufRejected(
                f"gguf-py reads tensor {name!r} differently; refusing the file."
            )


def _llama_check(path: Path) -> dict[str, Any]:
    # vocab_only: checks what llama.cpp checks in the header and tokenizer without
    # reading gigabytes of weights; an abort here kills only this child.
    import ctypes

    import llama_cpp

    messages: list[str] = []

    def on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level >= 3 and text:  # warnings and errors
            messages.append(text.decode("utf-8", errors="replace").rstrip())

    callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        detail = "; ".join(m for m in messages if m)[-500:] or "no reason given"
        raise GgufRejected(f"llama.cpp cannot load this file: {detail}")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(model, buf, len(buf))
        return {"n_vocab": n_vocab, "description": buf.value.decode("utf-8", "replace")}
    finally:
        llama_cpp.llama_model_free(model)


def _build_info(path: Path, header: dict[str, Any]) -> GgufInfo:
    metadata = header["metadata"]
    split_no, split_count = _split_position(metadata)
    arch = metadata.get("general.architecture")
    if split_no > 0 and arch is None:
        arch = ""  # llama.cpp's gguf-split keeps the metadata in the first part only
    elif not isinstance(arch, str) or not arch:
        raise GgufRejected("general.architecture is missing: this is not a model file.")
    template = metadata.get("tokenizer.chat_template")
    warnings: list[str] = []
    if template is not None:
        if not isinstance(template, str):
            raise GgufRejected("tokenizer.chat_template is not a string.")
        if len(template.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            raise GgufRejected("tokenizer.chat_template is larger than 1 MiB.")
        warnings = template_warnings(template)
        if warnings:
            raise GgufRejected(
                "The chat template (tokenizer.chat_template) contains code that "
                "tries to reach Python internals: " + ", ".join(warnings[:5]) + ". "
                "Remove or replace the template and upload the file again."
            )
    file_type = metadata.get("general.file_type")
    if not isinstance(file_type, int) or isinstance(file_type, bool):
        file_type = None
    tokens = metadata.get("tokenizer.ggml.tokens")
    ctx = metadata.get(f"{arch}.context_length")
    name = metadata.get("general.name")
    return GgufInfo(
        path=str(path),
        size_bytes=header["size_bytes"],
        version=header["version"],
        architecture=arch,
        name=name if isinstance(name, str) else None,
        tensor_count=header["tensor_count"],
        kv_count=header["kv_count"],
        alignment=header["alignment"],
        data_offset=header["data_offset"],
        file_type=file_type,
        file_type_name=_file_type_name(file_type),
        types_histogram=header["types_histogram"],
        parameter_count=header["parameter_count"],
        tensor_data_bytes=header["tensor_data_bytes"],
        context_length=ctx
        if isinstance(ctx, int) and not isinstance(ctx, bool)
        else None,
        vocab_size=tokens.length if isinstance(tokens, ArraySummary) else None,
        metadata=_summarise(metadata),
        tensor_types=header["tensor_types"],
        chat_template=template,
        chat_template_warnings=tuple(warnings),
        tensor_shapes={
            name: list(dims) for name, _type, dims, _off in header["tensors"]
        },
        split_no=split_no,
        split_count=split_count,
    )


def _split_position(metadata: dict[str, Any]) -> tuple[int, int]:
    """(split.no, split.count) of a part of a split model; (0, 0) when not split."""
    count = metadata.get("split.count")
    number = metadata.get("split.no")
    if count is None and number is None:
        return 0, 0
    if (
        not isinstance(count, int)
        or not isinstance(number, int)
        or isinstance(count, bool)
        or isinstance(number, bool)
        or not 0 <= number < count <= 10_000
    ):
        raise GgufRejected(
            f"split.no ({number!r}) and split.count ({count!r}) do not describe a "
            "part of a split model."
        )
    return number, count


# --------------------------------------------------------------------------
# Child process
# --------------------------------------------------------------------------


def _limit_resources(max_memory_bytes: int, file_size: int, cpu_seconds: int) -> None:
    import resource

    address_space = max_memory_bytes + file_size + _ADDRESS_SPACE_SLACK_BYTES
    for limit, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_DATA, max_memory_bytes),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),  # the validator writes no file
    ):
        _soft, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, hard))


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gguf_inspect")
    parser.add_argument("--child", required=True)
    parser.add_argument("--max-memory", type=int, default=DEFAULT_MAX_MEMORY_BYTES)
    parser.add_argument("--cpu-seconds", type=int, default=30)
    parser.add_argument("--llama-check", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.child)
    out = sys.stdout
    try:
        _limit_resources(args.max_memory, path.stat().st_size, args.cpu_seconds)
        header = parse_gguf_header(path)
        info = _build_info(path, header)
        _cross_check_with_gguf_py(path, header)
        if args.llama_check:
            info = GgufInfo(**{**asdict(info), "llama_check": _llama_check(path)})
    except GgufRejected as exc:
        out.write(json.dumps({"ok": False, "reason": str(exc)}))
        return 0
    except MemoryError:
        out.write(
            json.dumps(
                {
                    "ok": False,
                    "reason": "The file needs more memory to "
                    "validate than allowed; it is probably corrupt.",
                }
            )
        )
        return 0
    out.write(json.dumps({"ok": True, "info": asdict(info)}))
    return 0


# --------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def inspect_gguf(
    path: Path | str,
    *,
    timeout_s: float = 30.0,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    llama_check: bool = False,
) -> GgufInfo:
    """Validate an untrusted GGUF in a resource-limited child; BackendError if bad.

    ``llama_check`` also loads the file's vocabulary with llama.cpp in the child,
    so a file that would abort llama.cpp is refused here rather than crashing
    the worker later.

    A file is validated once per process: asking again about the same unchanged
    file (same inode, size and modification time) returns the earlier answer when
    that validation was at least as strict (llama.cpp's check if asked for, no more
    memory or time than allowed now). Refusals are not remembered.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise BackendError(
            f"Cannot read the model file {path.name}: {exc.strerror}."
        ) from None
    if not path.is_file():
        raise BackendError(f"{path.name} is not a regular file.")
    if st.st_size < 24:
        raise BackendError(
            f"{path.name} is too small ({st.st_size} bytes) to be a GGUF model."
        )
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    known = _validated(key, timeout_s, max_memory_bytes, llama_check)
    if known is not None:
        return known
    info = _validate_in_child(
        path,
        timeout_s=timeout_s,
        max_memory_bytes=max_memory_bytes,
        llama_check=llama_check,
    )
    _remember(key, _Validation(timeout_s, max_memory_bytes, llama_check, info))
    return info


@dataclass(frozen=True)
class _Validation:
    timeout_s: float
    max_memory_bytes: int
    llama_check: bool
    info: GgufInfo


_VALIDATED_FILES = 64
_validated_lock = threading.Lock()
_validated_files: OrderedDict[tuple[Any, ...], list[_Validation]] = OrderedDict()


def _validated(
    key: tuple[Any, ...], timeout_s: float, max_memory_bytes: int, llama_check: bool
) -> GgufInfo | None:
    """An earlier validation of this very file that was at least as strict."""
    with _validated_lock:
        runs = list(_validated_files.get(key, ()))
    for run in runs:
        if (
            run.timeout_s <= timeout_s
            and run.max_memory_bytes <= max_memory_bytes
            and (run.llama_check or not llama_check)
        ):
            # Answer as a validation without llama.cpp's check would have.
            return (
                run.info
                if llama_check
                else dataclasses.replace(run.info, llama_check=None)
            )
    return None


def _remember(key: tuple[Any, ...], run: _Validation) -> None:
    with _validated_lock:
        _validated_files.setdefault(key, []).append(run)
        _validated_files.move_to_end(key)
        while len(_validated_files) > _VALIDATED_FILES:
            _validated_files.popitem(last=False)


def _validate_in_child(
    path: Path, *, timeout_s: float, max_memory_bytes: int, llama_check: bool
) -> GgufInfo:
    """Run the validator on ``path`` in its own limited process group."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_repo_root()), env.get("PYTHONPATH", "")) if p
    )
    # One BLAS thread: OpenBLAS reserves memory per thread at import, which the
    # address-space limit would otherwise have to allow for.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "quantjobs.backends.gguf_inspect",
        "--child",
        str(path.resolve()),
        "--max-memory",
        str(int(max_memory_bytes)),
        "--cpu-seconds",
        str(max(1, int(timeout_s) + 1)),
    ]
    if llama_check:
        cmd.append("--llama-check")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(path.resolve().parent),
        start_new_session=True,  # its own process group, killed whole on timeout
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BackendError(
            f"Validating {path.name} took longer than {timeout_s:.0f} s; the file "
            "is probably corrupt."
        ) from None
    if proc.returncode != 0:
        raise BackendError(_crash_message(path, proc.returncode, stderr))
    try:
        result = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackendError(
            f"The validator of {path.name} returned no result."
        ) from None
    if not result.get("ok"):
        raise BackendError(f"{path.name} was refused: {result.get('reason')}")
    data = result["info"]
    data["chat_template_warnings"] = tuple(data["chat_template_warnings"])
    data["notes"] = tuple(data["notes"])
    return GgufInfo(**data)


def _crash_message(path: Path, returncode: int, stderr: bytes) -> str:
    if returncode < 0:
        sig = -returncode
        try:
            sig_name = signal.Signals(sig).name
        except ValueError:
            sig_name = f"signal {sig}"
        why = {
            "SIGKILL": " (out of memory or time)",
            "SIGXCPU": " (CPU time limit)",
            "SIGABRT": " (the parser aborted)",
            "SIGSEGV": " (the parser crashed)",
        }.get(sig_name, "")
        return f"{path.name} was refused: validating it killed the validator with {sig_name}{why}."
    tail = stderr.decode("utf-8", errors="replace").strip().splitlines()
    last = tail[-1] if tail else "no message"
    if "MemoryError" in last:
        return (
            f"{path.name} was refused: it needs more memory to validate than allowed."
        )
    return f"{path.name} was refused: the validator failed ({last[-300:]})."


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
