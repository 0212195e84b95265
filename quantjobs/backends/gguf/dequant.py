"""Turn a quantized GGUF into a clean F16 GGUF with gguf-py.

llama.cpp refuses to requantize quantized tensors unless ``allow_requantize``
is set, and requantizing compounds two rounding errors in ways its type mixes
were never tuned for. So a quantized upload is first dequantized, tensor by
tensor, into an F16 file that keeps every metadata key; that file is both the
source of every quantization and the reference the results are compared with.

Only call this on a file :func:`quantjobs.backends.gguf_inspect.inspect_gguf`
accepted: gguf-py's reader trusts the lengths in the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantjobs.backends.base import BackendError, LogFn, ProgressFn

__all__ = ["DequantizeResult", "dequantize_to_f16", "is_float_file"]

_FLOAT_TENSOR_TYPES = {"F32", "F16", "BF16"}
_F16_FILE_TYPE = 1  # LLAMA_FTYPE_MOSTLY_F16


@dataclass(frozen=True)
class DequantizeResult:
    """What the dequantization wrote."""

    path: Path
    tensor_count: int
    kv_count: int
    f32_tensors: int  # tensors kept (or, out of F16 range, written) as F32


def is_float_file(types_histogram: dict[str, int]) -> bool:
    """True if every tensor is F32/F16/BF16: nothing to dequantize."""
    return set(types_histogram) <= _FLOAT_TENSOR_TYPES


def _copy_field(writer: Any, field: Any) -> None:
    from gguf import GGUFValueType

    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        sub = field.types[-1] if len(field.types) > 1 else None
        if sub is None:  # an empty array: gguf-py cannot write one, nor needs to
            return
        if sub == GGUFValueType.ARRAY:
            raise BackendError(f"Metadata {field.name!r} nests arrays; cannot copy it.")
        if sub == GGUFValueType.STRING:
            # Raw bytes, not str: some vocabularies hold byte strings that are not
            # valid UTF-8 on their own, and they must survive unchanged.
            value: Any = [bytes(field.parts[idx]) for idx in field.data]
        else:
            value = field.contents()
        writer.add_key_value(field.name, value, main, sub_type=sub)
    elif main == GGUFValueType.STRING:
        writer.add_key_value(field.name, bytes(field.parts[-1]), main)
    else:
        writer.add_key_value(field.name, field.contents(), main)


class _OutOfF16Range(Exception):
    pass


def _tensor_plan(reader: Any, f32_names: set[str]) -> list[tuple[Any, Any]]:
    plan: list[tuple[Any, Any]] = []
    for tensor in reader.tensors:
        out_dtype: type[np.floating[Any]] | None
        if tensor.tensor_type.name in _FLOAT_TENSOR_TYPES:
            out_dtype = None  # copied byte for byte
        elif len(tensor.shape) == 1 or tensor.name in f32_names:
            out_dtype = np.float32
        else:
            out_dtype = np.float16
        plan.append((tensor, out_dtype))
    return plan


def _write(
    reader: Any,
    dest: Path,
    f32_names: set[str],
    progress: ProgressFn,
) -> tuple[int, int]:
    from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    arch = str(reader.get_field("general.architecture").contents())
    writer = GGUFWriter(str(dest), arch)
    kv_count = 0
    try:
        for name, field in reader.fields.items():
            # GGUF.* are the header's counts, which gguf-py presents as fields;
            # the writer adds general.architecture itself.
            if name.startswith("GGUF.") or name == "general.architecture":
                continue
            if name == "general.file_type":
                writer.add_key_value(name, _F16_FILE_TYPE, GGUFValueType.UINT32)
            else:
                _copy_field(writer, field)
            if name == "general.alignment":
                writer.data_alignment = int(field.contents())
            kv_count += 1
        if reader.get_field("general.file_type") is None:
            writer.add_key_value(
                "general.file_type", _F16_FILE_TYPE, GGUFValueType.UINT32
            )
            kv_count += 1

        # The header (every tensor's type and size) goes out before any data, so
        # types are decided up front: F16 unless a scan found values beyond it.
        plan = _tensor_plan(reader, f32_names)
        for tensor, out_dtype in plan:
            np_shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
            if out_dtype is None:
                writer.add_tensor_info(
                    tensor.name, np_shape, tensor.data.dtype, int(tensor.n_bytes),
                    raw_dtype=tensor.tensor_type,
                )  # fmt: skip
                continue
            is_f16 = out_dtype is np.float16
            n_elements = int(tensor.n_elements)
            writer.add_tensor_info(
                tensor.name,
                np_shape,
                np.dtype(out_dtype),
                n_elements * (2 if is_f16 else 4),
                raw_dtype=GGMLQuantizationType.F16
                if is_f16
                else GGMLQuantizationType.F32,
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for index, (tensor, out_dtype) in enumerate(plan):
            if out_dtype is None:
                writer.write_tensor_data(tensor.data)
            else:
                np_shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
                values = dequantize(tensor.data, tensor.tensor_type).reshape(np_shape)
                out = values.astype(out_dtype)
                if out_dtype is np.float16 and not np.isfinite(out).all():
                    raise _OutOfF16Range(tensor.name)
                writer.write_tensor_data(out)
            progress((index + 1) / len(plan), "dequantize")
    finally:
        writer.close()
    f32_count = sum(
        1
        for t, d in plan
        if d is np.float32 or (d is None and t.tensor_type.name == "F32")
    )
    return kv_count, f32_count


def _names_beyond_f16(reader: Any) -> set[str]:
    from gguf.quants import dequantize

    limit = float(np.finfo(np.float16).max)
    names: set[str] = set()
    for tensor in reader.tensors:
        if tensor.tensor_type.name in _FLOAT_TENSOR_TYPES or len(tensor.shape) == 1:
            continue
        values = dequantize(tensor.data, tensor.tensor_type)
        if float(np.abs(values).max()) > limit:
            names.add(tensor.name)
    return names


def dequantize_to_f16(
    source: Path, dest: Path, progress: ProgressFn, log: LogFn
) -> DequantizeResult:
    """Write ``source`` to ``dest`` with every quantized tensor as F16.

    1-D tensors (norms, biases) become F32, as llama.cpp's converter writes
    them; F16/BF16/F32 tensors are copied unchanged; metadata is copied key by
    key with ``general.file_type`` set to MOSTLY_F16. A tensor whose values
    exceed F16's range is written as F32 (found by a second pass, only then).
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(source))
    if reader.get_field("general.architecture") is None:
        raise BackendError(f"{source.name} has no general.architecture.")
    try:
        kv_count, f32_count = _write(reader, dest, set(), progress)
    except _OutOfF16Range as exc:
        log(f"{exc.args[0]} holds values beyond F16's range; scanning all tensors")
        f32_names = _names_beyond_f16(reader)
        log(f"writing {len(f32_names)} tensors as F32 instead of F16")
        kv_count, f32_count = _write(reader, dest, f32_names, progress)
    log(
        f"dequantized {len(reader.tensors)} tensors of {source.name} to F16 "
        f"({f32_count} F32)"
    )
    return DequantizeResult(
        path=dest,
        tensor_count=len(reader.tensors),
        kv_count=kv_count,
        f32_tensors=f32_count,
    )
