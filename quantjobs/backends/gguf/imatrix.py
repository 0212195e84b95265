"""Compute an importance matrix with llama.cpp's eval callback, as llama-imatrix does.

For every weight matrix ``W`` of the repeating blocks (``blk.*``), the
importance of input column ``j`` is the mean over calibration tokens of
``x_j^2``, where ``x`` is the activation row entering ``W`` in the matrix
multiplication ``W @ x``. llama-imatrix (``tools/imatrix/imatrix.cpp``) gathers
it from the scheduler's eval callback; the callback is asked about every graph
node (``ask=True``) and, for those it wants, called again once the node's
inputs are computed (``ask=False``). We do the same through the ``cb_eval``
field of ``llama_context_params`` and read ``src[1]`` of each ``MUL_MAT`` node.

Like llama-imatrix by default: batches under 16 tokens are ignored, and
``output.weight`` is left out. Dense models only: mixture-of-experts
``MUL_MAT_ID`` nodes are skipped (llama.cpp then refuses the IQ types for
those tensors, with its own message).

The callback reads ``struct ggml_tensor`` directly, so its layout is checked
against ``ggml_tensor_overhead()`` before anything is read.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantjobs.backends.base import BackendError, LogFn, ProgressFn

__all__ = [
    "ImatrixResult",
    "compute_imatrix",
    "imatrix_c_array",
    "imatrix_cache",
    "imatrix_load",
    "imatrix_store",
    "shared_imatrix",
]

_GGML_MAX_DIMS = 4
_GGML_MAX_SRC = 10
_GGML_MAX_OP_PARAMS = 64
_GGML_MAX_NAME = 64
_GGML_OBJECT_SIZE = 32  # sizeof(struct ggml_object), see ggml.c
_GGML_TYPE_F32 = 0
_MIN_BATCH_TOKENS = 16  # imatrix.cpp: "why are small batches ignored (<16 tokens)?"


class _GgmlTensor(ctypes.Structure):
    # struct ggml_tensor in ggml/include/ggml.h of the vendored llama.cpp.
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * _GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * _GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (_GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * _GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * _GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


_TensorPtr = ctypes.POINTER(_GgmlTensor)


@dataclass
class ImatrixResult:
    """Per weight matrix: the mean squared activation of each input column."""

    values: dict[str, npt.NDArray[np.float32]]
    tokens: int  # calibration tokens processed
    chunks: int
    seconds: float
    skipped: list[str] = field(default_factory=list)


class _Ggml:
    """The few ggml-base functions the collector needs, with a layout check."""

    def __init__(self) -> None:
        import llama_cpp

        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        candidates = sorted(lib_dir.glob("libggml-base.*"))
        if not candidates:
            raise BackendError(
                "llama-cpp-python ships no libggml-base; cannot compute an imatrix."
            )
        lib = ctypes.CDLL(str(candidates[0]))
        lib.ggml_tensor_overhead.restype = ctypes.c_size_t
        lib.ggml_op_name.restype = ctypes.c_char_p
        lib.ggml_op_name.argtypes = [ctypes.c_int]
        lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
        lib.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
        ]  # fmt: skip
        expected = lib.ggml_tensor_overhead() - _GGML_OBJECT_SIZE
        if ctypes.sizeof(_GgmlTensor) != expected:
            raise BackendError(
                "This llama.cpp build has a different ggml_tensor layout "
                f"({expected} bytes, expected {ctypes.sizeof(_GgmlTensor)}); computing an "
                "importance matrix is not possible with it. Choose a type that needs "
                "none (for example Q2_K or Q3_K_S)."
            )
        self.lib = lib
        self.mul_mat = self._op_id(b"MUL_MAT")

    def _op_id(self, name: bytes) -> int:
        # Look the enum value up by name instead of hard-coding it: ggml inserts
        # new ops before MUL_MAT from time to time. Ops before it are all valid.
        for op in range(1, 200):
            if self.lib.ggml_op_name(op) == name:
                return op
        raise BackendError(
            "Could not find ggml's MUL_MAT operation; cannot compute an imatrix."
        )


class _Collector:
    def __init__(self, ggml: _Ggml) -> None:
        self.ggml = ggml
        self.sums: dict[str, npt.NDArray[np.float64]] = {}
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        self.skipped: set[str] = set()

    @staticmethod
    def _weight_name(raw: bytes) -> str:
        # Backends may decorate names ("CUDA0#blk.0.attn_k.weight#0").
        name = raw.decode("utf-8", errors="replace")
        if "#" in name:
            name = name.split("#")[1]
        return name

    def __call__(self, t_ptr: int, ask: bool, _user: Any) -> bool:
        try:
            t = ctypes.cast(t_ptr, _TensorPtr).contents
            if t.op != self.ggml.mul_mat:
                return False
            src0 = ctypes.cast(t.src[0], _TensorPtr).contents
            src1 = ctypes.cast(t.src[1], _TensorPtr).contents
            name = self._weight_name(src0.name)
            if ask:
                return (
                    src1.ne[1] >= _MIN_BATCH_TOKENS
                    and src1.type == _GGML_TYPE_F32
                    and name.startswith("blk.")
                )
            self._collect(name, src0, src1)
            return True
        except BaseException as exc:  # an exception must not unwind through C
            self.error = exc
            return False  # aborts this graph computation; the decode reports it

    def _collect(self, name: str, src0: _GgmlTensor, src1: _GgmlTensor) -> None:
        ne = [int(src1.ne[i]) for i in range(4)]
        nb = [int(src1.nb[i]) for i in range(4)]
        if nb[0] != 4:
            raise BackendError(f"Activations of {name} are not contiguous rows.")
        nbytes = sum(nb[i] * (ne[i] - 1) for i in range(1, 4)) + 4 * ne[0]
        if self.ggml.lib.ggml_backend_buffer_is_host(src1.buffer):
            raw = (ctypes.c_char * nbytes).from_address(int(src1.data))
            buffer: Any = raw
        else:
            host = ctypes.create_string_buffer(nbytes)
            self.ggml.lib.ggml_backend_tensor_get(
                ctypes.addressof(src1), host, 0, nbytes
            )
            buffer = host
        acts = np.ndarray(
            shape=(ne[3], ne[2], ne[1], ne[0]),
            dtype=np.float32,
            buffer=buffer,
            strides=(nb[3], nb[2], nb[1], nb[0]),
        )
        # A dense weight's ne[2], ne[3] are 1; larger ones are batched matrices
        # (imatrix.cpp maps activation slice (i3, i2) to matrix i3*ne2 + i2).
        w2, w3 = int(src0.ne[2]), int(src0.ne[3])
        n_mat = w2 * w3
        squares = np.einsum("abij,abij->abj", acts, acts, dtype=np.float64)
        sums = self.sums.get(name)
        if sums is None:
            sums = np.zeros((n_mat, ne[0]), dtype=np.float64)
            self.sums[name] = sums
            self.counts[name] = 0
        for i3 in range(ne[3]):
            for i2 in range(ne[2]):
                sums[(i3 % w3) * w2 + (i2 % w2)] += squares[i3, i2]
        if not np.isfinite(sums).all():
            raise BackendError(
                f"Non-finite activations entering {name}; the model is broken."
            )
        self.counts[name] += ne[1] * ne[2] * ne[3] // n_mat


def compute_imatrix(
    model_path: Path,
    tokens_text: str,
    *,
    n_ctx: int = 512,
    max_chunks: int | None = None,
    threads: int = 2,
    progress: ProgressFn,
    log: LogFn,
) -> ImatrixResult:
    """Importance matrix of ``model_path`` over ``tokens_text`` (chunks of n_ctx)."""
    import llama_cpp

    from quantjobs.backends.gguf.session import LlamaSession

    ggml = _Ggml()
    collector = _Collector(ggml)
    callback = llama_cpp.ggml_backend_sched_eval_callback(collector)
    t0 = time.perf_counter()
    session = LlamaSession(model_path, n_ctx=n_ctx, n_threads=threads, cb_eval=callback)
    try:
        tokens = session.tokenize(tokens_text)
        n_chunk = len(tokens) // n_ctx
        if max_chunks:
            n_chunk = min(n_chunk, max_chunks)
        if n_chunk < 1:
            raise BackendError(
                f"The calibration text is {len(tokens):,} tokens; the importance matrix "
                f"needs at least {n_ctx:,}. Provide a longer calibration text."
            )
        for index in range(n_chunk):
            chunk = list(tokens[index * n_ctx : (index + 1) * n_ctx])
            if session.add_bos:
                chunk[0] = session.bos  # as llama-imatrix does for every chunk
            session.clear()
            try:
                # All positions as outputs, as llama-imatrix runs: otherwise the
                # last layer only computes the rows whose logits are asked for,
                # and its matrices would see too few tokens to be collected.
                session.decode(chunk, logits_from=0, keep_logits=False)
            except BackendError:
                if collector.error is not None:
                    raise collector.error from None
                raise
            if collector.error is not None:
                raise collector.error
            progress((index + 1) / n_chunk, "imatrix")
    finally:
        session.close()
    if not collector.sums:
        raise BackendError(
            "No activations were collected; cannot build an importance matrix."
        )
    values = {
        name: (sums / max(1, collector.counts[name])).astype(np.float32).reshape(-1)
        for name, sums in collector.sums.items()
    }
    seconds = time.perf_counter() - t0
    log(
        f"importance matrix: {len(values)} matrices from {n_chunk} chunks of {n_ctx} "
        f"tokens in {seconds:.1f} s"
    )
    return ImatrixResult(
        values=values, tokens=n_chunk * n_ctx, chunks=n_chunk, seconds=seconds
    )


def imatrix_c_array(
    values: dict[str, npt.NDArray[np.float32]],
) -> tuple[Any, list[Any]]:
    """A NULL-terminated ``llama_model_imatrix_data[]`` for llama_model_quantize.

    Returns the array and the Python objects that must outlive the call.
    """
    import llama_cpp

    entries = sorted(values.items())
    array = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
    keep: list[Any] = []
    for i, (name, data) in enumerate(entries):
        contiguous = np.ascontiguousarray(data, dtype=np.float32)
        encoded = name.encode("utf-8")
        keep += [contiguous, encoded]
        array[i].name = encoded
        array[i].data = contiguous.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        array[i].size = contiguous.size
    # array[len(entries)] stays zero-filled: the {NULL, NULL, 0} terminator.
    keep.append(array)
    return array, keep


# A job's formats share one F16 base and one calibration text, so the matrix made
# for the first format that needs one serves the others (every candidate of a
# search with imatrix on): it is kept in the job's shared folder like the base.


def imatrix_cache(
    shared: Path | None, base: Path, text: str, n_ctx: int, chunks: object
) -> tuple[Path, Path] | None:
    """(values .npz, meta .json) of the matrix for this base, text and chunking in
    the job's shared folder; None when the formats share nothing."""
    if shared is None:
        return None
    import hashlib

    key = hashlib.sha256(
        f"{base.name}\0{n_ctx}\0{chunks}\0{text}".encode()
    ).hexdigest()[:16]
    return shared / f"imatrix-{key}.npz", shared / f"imatrix-{key}.json"


def imatrix_load(
    paths: tuple[Path, Path] | None,
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, Any]] | None:
    """A matrix an earlier format stored (its meta marked ``reused``), or None."""
    if paths is None or not paths[1].is_file():
        return None
    import json

    with np.load(paths[0]) as stored:
        values = {name: stored[name] for name in stored.files}
    return values, {**json.loads(paths[1].read_text()), "reused": True}


def imatrix_store(
    paths: tuple[Path, Path],
    values: dict[str, npt.NDArray[np.float32]],
    meta: dict[str, Any],
) -> None:
    """Keep a computed matrix for the job's later formats; the meta file, written
    last and renamed into place, marks it complete."""
    import json
    import os

    values_path, meta_path = paths
    partial = values_path.with_name(f".{values_path.stem}.partial.npz")
    np.savez(partial, **values)  # type: ignore[arg-type]
    os.replace(partial, values_path)
    partial_meta = meta_path.with_name(f".{meta_path.name}.partial")
    partial_meta.write_text(json.dumps(meta))
    os.replace(partial_meta, meta_path)


def shared_imatrix(
    base: Path,
    text: str,
    *,
    n_ctx: int,
    max_chunks: int | None,
    threads: int,
    shared: Path | None,
    source: str,
    progress: ProgressFn,
    log: LogFn,
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, Any]]:
    """The job's importance matrix and what it used: made once, then reused."""
    cached = imatrix_cache(shared, base, text, n_ctx, max_chunks)
    reused = imatrix_load(cached)
    if reused is not None:
        log(
            "using the importance matrix made for an earlier format of this job "
            f"({reused[1].get('tokens', 0):,} calibration tokens)"
        )
        progress(1.0, "imatrix")
        return reused
    result = compute_imatrix(
        base, text, n_ctx=n_ctx, max_chunks=max_chunks, threads=threads,
        progress=progress, log=log,
    )  # fmt: skip
    meta = {
        "matrices": len(result.values),
        "chunks": result.chunks,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 3),
        "source": source,
    }
    if cached is not None:
        imatrix_store(cached, result.values, meta)
    return result.values, meta
