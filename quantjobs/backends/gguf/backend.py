"""GgufBackend: quantize with llama.cpp's ``llama_model_quantize``, evaluate with llama_eval.

Pipeline of :meth:`GgufBackend.quantize`:

1. validate the source (a GGUF we did not write goes through ``inspect_gguf`` in
   a resource-limited child first, since a malformed file can abort llama.cpp);
2. make a clean base: an F16/BF16/F32 GGUF is used as is; a quantized GGUF is
   dequantized to F16 with gguf-py; a Hugging Face checkpoint is converted by
   llama.cpp's own convert_hf_to_gguf.py (see convert).
   The base is the result's ``reference_path``;
3. for the types llama.cpp refuses without one, compute an importance matrix
   on calibration text;
4. ``llama_model_quantize`` from the base (never ``allow_requantize``) into a
   temporary file in ``work_dir``;
5. verify the output (parse it back in a child, tensor count, file type, tensor
   types), hash it, and only then ``os.replace`` it to its final name.

Whatever fails, the partial files this call created are removed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
    sha256_file,
)
from quantjobs.backends.gguf.ftypes import FALLBACK_TYPES, GgufType, parse_gguf_format

if TYPE_CHECKING:  # a runtime import would be circular (gguf_inspect uses .header)
    from quantjobs.backends.gguf_inspect import GgufInfo

__all__ = ["GgufBackend", "sha256_file", "verify_quantized"]

_QUANT_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")
_FLOAT_TENSOR_TYPES = {"F32", "F16", "BF16"}
_BASE_NAME = "reference-F16.gguf"


def _stage(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """A progress callback mapping [0, 1] of one step onto [start, end] overall."""

    def report(fraction: float, stage: str) -> None:
        progress(start + (end - start) * min(1.0, max(0.0, fraction)), stage)

    return report


def _os_error(exc: OSError, what: str) -> BackendError:
    # numpy's tofile() reports a short write as "N requested and M written",
    # without an errno: on a local disk that means it is full.
    short_write = exc.errno is None and "requested and" in str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or short_write:
        return BackendError(f"The work directory ran out of disk space while {what}.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BackendError(f"The work directory is not writable ({what}).")
    return BackendError(
        f"Could not write the output while {what}: {exc.strerror or exc}."
    )


def _check_writable(work_dir: Path) -> None:
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        probe = work_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise _os_error(exc, "preparing the work directory") from None


def verify_quantized(
    path: Path,
    target: GgufType,
    *,
    expected_tensors: int,
    timeout_s: float = 120.0,
) -> GgufInfo:
    """Parse a produced GGUF back (in a child) and check it is what was asked for.

    Returns its GgufInfo; raises BackendError when the tensor count, the file
    type or the tensor types do not match ``target``.
    """
    from quantjobs.backends.gguf_inspect import inspect_gguf

    info = inspect_gguf(path, timeout_s=timeout_s)
    if info.tensor_count != expected_tensors:
        raise BackendError(
            f"The quantized file has {info.tensor_count} tensors instead of "
            f"{expected_tensors}; llama.cpp wrote an incomplete file."
        )
    if info.file_type != target.ftype:
        raise BackendError(
            f"The quantized file says it is {info.file_type_name}, not {target.name}."
        )
    types = set(info.types_histogram)
    if not target.is_float:
        # Most matrices get the target's base type, or the block-32 type that
        # llama.cpp falls back on for rows whose length does not fit 256-blocks.
        expected = {
            target.base_type,
            FALLBACK_TYPES.get(target.base_type, target.base_type),
        }
        if not types & expected:
            raise BackendError(
                f"The quantized file has no {target.base_type} tensors "
                f"(it has {', '.join(sorted(types))}); quantization did not apply."
            )
        quantized = sum(
            n for t, n in info.types_histogram.items() if t not in _FLOAT_TENSOR_TYPES
        )
        if quantized == 0:
            raise BackendError("The quantized file has no quantized tensors.")
    elif types - {target.name, "F32"}:
        raise BackendError(
            f"The {target.name} file has unexpected tensor types: {', '.join(sorted(types))}."
        )
    return info


def _quantize_failure(reason: str, target: GgufType) -> BackendError:
    lower = reason.lower()
    if "imatrix" in lower or "importance matrix" in lower:
        return BackendError(
            f"{target.name} needs an importance matrix for this model "
            f"(llama.cpp: {reason}). Choose Q2_K or a higher-bit type."
        )
    if "requantiz" in lower:
        return BackendError(
            "llama.cpp refused to requantize an already quantized tensor; the source "
            f"should have been dequantized first ({reason})."
        )
    if "ios" in lower or "failed to open" in lower or "write" in lower:
        return BackendError(
            "llama.cpp could not write the quantized file (is the work directory full "
            f"or read-only?): {reason}"
        )
    return BackendError(f"llama.cpp failed to quantize to {target.name}: {reason}")


class _QuantizeProgress:
    """Turns llama.cpp's "[  12/ 272] tensor ..." log lines into progress."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress
        self.last = 0.0

    def __call__(self, line: str) -> None:
        match = _QUANT_LINE.match(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            if total and time.monotonic() - self.last > 0.2:
                self.last = time.monotonic()
                self.progress(done / total, "quantize")


def _run_llama_quantize(
    base: Path,
    out: Path,
    target: GgufType,
    *,
    threads: int,
    imatrix: dict[str, Any] | None,
    progress: ProgressFn,
    log: LogFn,
) -> None:
    import llama_cpp

    from quantjobs.backends.gguf.imatrix import imatrix_c_array
    from quantjobs.backends.gguf.session import LlamaLogs

    logs = LlamaLogs.install()
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = target.ftype
    params.allow_requantize = False  # we always quantize from the clean base
    keep: list[Any] = []
    if imatrix is not None:
        array, keep = imatrix_c_array(imatrix)
        params.imatrix = ctypes.cast(
            array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data)
        )
    mark = logs.mark()
    logs.on_info = _QuantizeProgress(progress)
    try:
        rc = llama_cpp.llama_model_quantize(
            str(base).encode(), str(out).encode(), ctypes.byref(params)
        )
    finally:
        logs.on_info = None
        del keep
    for line in logs.since(mark)[-3:]:
        log(f"llama.cpp: {line}")
    if rc != 0:
        raise _quantize_failure(logs.reason(mark), target)


IMATRIX_CHOICES = ("auto", "on", "off")


def want_imatrix(target: GgufType, choice: object) -> bool:
    """Whether to compute an importance matrix for ``target``.

    ``choice``: "auto" (default) where llama.cpp needs one or recommends one
    (every IQ type), "on" for every quantized type, "off" never (a type that
    needs one is refused). ``True``/``False`` are read as "on"/"off".
    """
    if choice is True:
        choice = "on"
    elif choice is False or choice is None or choice == "":
        choice = "auto" if choice is None or choice == "" else "off"
    if choice not in IMATRIX_CHOICES:
        raise BackendError(
            f"imatrix must be one of {', '.join(IMATRIX_CHOICES)}, not {choice!r}."
        )
    if target.is_float:
        return False
    if choice == "off":
        if target.needs_imatrix:
            raise BackendError(
                f"{target.name} needs an importance matrix; set imatrix to auto or on, "
                "or choose a type that does not need one (Q2_K, Q3_K_M, Q4_K_M...)."
            )
        return False
    recommended = target.needs_imatrix or target.name.startswith("IQ")
    return choice == "on" or recommended


def _check_family(model_dir: Path) -> None:
    """Refuse a family the GGUF path is not proven on (job creation checks first)."""
    from quantjobs.backends.families import unsupported_reason

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BackendError("The model directory has no readable config.json.") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    reason = unsupported_reason("gguf", str(model_type or ""))
    if reason:
        raise BackendError(reason)


class GgufBackend:
    """llama.cpp GGUF quantization (any llama-quantize type) on CPU workers."""

    name = "gguf"
    queue: Literal["cpu", "gpu"] = "cpu"

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult:
        """Produce ``gguf-<TYPE>`` from a GGUF or HF source; see the module docstring."""
        target = parse_gguf_format(request.format)
        work_dir = request.work_dir
        _check_writable(work_dir)
        created: list[Path] = []
        partial = work_dir / f".model-{target.name}.gguf.partial"
        succeeded = False
        try:
            result = self._quantize(
                request, target, work_dir, partial, created, progress, log
            )
            succeeded = True
            return result
        except OSError as exc:
            raise _os_error(exc, f"producing {target.name}") from None
        finally:
            if not succeeded:
                # Never leave a half-written model behind: llama.cpp leaves its
                # output in place when it fails, and so would a full disk.
                for path in [partial, *created]:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        log(f"could not remove {path.name}: {exc.strerror}")

    def _quantize(
        self,
        request: QuantizeRequest,
        target: GgufType,
        work_dir: Path,
        partial: Path,
        created: list[Path],
        progress: ProgressFn,
        log: LogFn,
    ) -> QuantizeResult:
        from quantjobs.backends.gguf_inspect import inspect_gguf

        threads = max(1, int(request.threads))
        final = work_dir / f"model-{target.name}.gguf"
        t0 = time.perf_counter()

        # 1-2. a clean base to quantize from and compare with.
        base, base_meta = self._clean_base(
            request, work_dir, created, _stage(progress, 0.0, 0.35), log
        )
        base_info = inspect_gguf(base, timeout_s=120)
        metadata: dict[str, Any] = {"base": base_meta}

        # 3. importance matrix, when the type needs one (or it is asked for).
        imatrix_values: dict[str, Any] | None = None
        if want_imatrix(target, request.options.get("imatrix")):
            imatrix_values, metadata["imatrix"] = self._imatrix(
                request, base, threads, _stage(progress, 0.35, 0.55), log
            )

        # 4. quantize into a temporary name.
        progress(0.55, "quantize")
        log(f"quantizing {base.name} to {target.name} with {threads} threads")
        tq = time.perf_counter()
        _run_llama_quantize(
            base,
            partial,
            target,
            threads=threads,
            imatrix=imatrix_values,
            progress=_stage(progress, 0.55, 0.9),
            log=log,
        )
        quantize_s = time.perf_counter() - tq

        # 5. verify, hash, publish.
        progress(0.9, "verify")
        info = verify_quantized(
            partial, target, expected_tensors=base_info.tensor_count
        )
        digest = sha256_file(partial)
        os.replace(partial, final)
        created.append(final)
        bits = 8 * info.tensor_data_bytes / max(1, info.parameter_count)
        metadata.update(
            {
                "gguf_type": target.name,
                "ftype": target.ftype,
                "sha256": digest,
                "size_bytes": info.size_bytes,
                "base_size_bytes": base_info.size_bytes,
                "tensor_count": info.tensor_count,
                "types_histogram": info.types_histogram,
                "parameter_count": info.parameter_count,
                "bits_per_weight": round(bits, 4),
                "quantize_s": round(quantize_s, 3),
                "total_s": round(time.perf_counter() - t0, 3),
                "threads": threads,
            }
        )
        log(
            f"{final.name}: {info.size_bytes / 2**20:.1f} MiB, {bits:.2f} bits/weight, "
            f"types {info.types_histogram}"
        )
        progress(1.0, "done")
        return QuantizeResult(
            artifact_path=final,
            format=target.format,
            reference_path=base,
            reference_kind="gguf",
            artifact_kind="gguf",
            metadata=metadata,
        )

    # -- steps ---------------------------------------------------------------

    def _clean_base(
        self,
        request: QuantizeRequest,
        work_dir: Path,
        created: list[Path],
        progress: ProgressFn,
        log: LogFn,
    ) -> tuple[Path, dict[str, Any]]:
        """The F16 base, made once per job when the job's formats share a folder."""
        shared = request.shared_dir
        if shared is None:
            return self._make_base(
                request, work_dir / _BASE_NAME, created, progress, log
            )
        base, meta_path = shared / _BASE_NAME, shared / f"{_BASE_NAME}.json"
        if meta_path.is_file():
            meta: dict[str, Any] = json.loads(meta_path.read_text())
            log("using the F16 base made for an earlier format of this job")
            progress(1.0, "base")
            return (base if meta["kind"] != "source" else request.source_path), meta
        # Built under a temporary name and renamed: a later format never finds
        # half a base, and a failure removes it (it is in ``created``).
        building = shared / f".{_BASE_NAME}.partial"
        created.append(building)
        path, meta = self._make_base(request, building, created, progress, log)
        if path == building:
            os.replace(building, base)
            path = base
        partial_meta = shared / f".{_BASE_NAME}.json.partial"
        partial_meta.write_text(json.dumps(meta))
        os.replace(partial_meta, meta_path)
        return path, meta

    def _make_base(
        self,
        request: QuantizeRequest,
        base: Path,
        created: list[Path],
        progress: ProgressFn,
        log: LogFn,
    ) -> tuple[Path, dict[str, Any]]:
        from quantjobs.backends.gguf.convert import convert_hf_to_gguf
        from quantjobs.backends.gguf.dequant import dequantize_to_f16, is_float_file
        from quantjobs.backends.gguf_inspect import inspect_gguf

        source = request.source_path
        if request.source_kind == "hf":
            if not source.is_dir():
                raise BackendError("A Hugging Face source must be a model directory.")
            _check_family(source)
            created.append(base)
            converted = convert_hf_to_gguf(
                source, base, out_type="F16", progress=progress, log=log
            )
            return base, {
                "kind": "converted",
                "architecture": converted.architecture,
                "converter": "llama.cpp convert_hf_to_gguf.py",
                "byte_fallback_fixed": converted.byte_fallback_fixed,
            }
        if request.source_kind != "gguf":
            raise BackendError(f"Unknown source kind {request.source_kind!r}.")
        # An upload: validate in a sandboxed child, including llama.cpp's own
        # header checks, before anything in this process touches it.
        info = inspect_gguf(source, timeout_s=120, llama_check=True)
        log(
            f"source: {info.architecture}, {info.tensor_count} tensors, "
            f"{info.file_type_name}, types {info.types_histogram}"
        )
        if is_float_file(info.types_histogram):
            log("source is unquantized; using it as the base")
            return source, {"kind": "source", "file_type": info.file_type_name}
        log(
            f"source is {info.file_type_name}; dequantizing to an F16 base with gguf-py"
        )
        created.append(base)
        result = dequantize_to_f16(source, base, progress, log)
        return base, {
            "kind": "dequantized",
            "from": info.file_type_name,
            "f32_tensors": result.f32_tensors,
        }

    def _imatrix(
        self,
        request: QuantizeRequest,
        base: Path,
        threads: int,
        progress: ProgressFn,
        log: LogFn,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from quantjobs.backends.gguf.imatrix import shared_imatrix
        from quantjobs.evaltext import default_calibration_text

        chunks = request.options.get("imatrix_chunks")
        return shared_imatrix(
            base,
            request.calibration_text or default_calibration_text(),
            n_ctx=int(request.options.get("imatrix_context_tokens", 512)),
            max_chunks=int(chunks) if chunks else None,
            threads=threads,
            shared=request.shared_dir,
            source="request" if request.calibration_text else "built-in",
            progress=progress,
            log=log,
        )

    # -- evaluation ----------------------------------------------------------

    def evaluate(
        self, request: EvaluateRequest, progress: ProgressFn, log: LogFn
    ) -> EvaluateResult:
        """Perplexity, KLD, top-1 agreement and speed (see llama_eval)."""
        from quantjobs.backends.llama_eval import evaluate_gguf

        return evaluate_gguf(request, progress, log)
