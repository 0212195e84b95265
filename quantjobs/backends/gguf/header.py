"""A bounded parser of GGUF headers, for files we did not write.

Every count and length in the header is checked against the bytes actually left
in the file (and against ceilings no real model reaches) before anything is
read or allocated, and nothing is memory-mapped. It is plain Python, so a
hostile file can cost it at most time and memory, both of which
:func:`quantjobs.backends.gguf_inspect.inspect_gguf` limits by running it in a
child process.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ArraySummary",
    "GgufRejected",
    "parse_gguf_header",
    "template_warnings",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

# Generous ceilings far above any real model, far below what would let a crafted
# header make the parser allocate or loop without end. A 400B-parameter model has
# ~2,000 tensors and ~50 metadata keys; vocabularies stay under a million entries.
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 16
MAX_KEY_BYTES = 1 << 12
MAX_STRING_BYTES = 1 << 26
MAX_ARRAY_LEN = 1 << 24
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME - 1: llama.cpp refuses longer names
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ALIGNMENT = 1 << 20
DEFAULT_ALIGNMENT = 32
INT64_MAX = (1 << 63) - 1

# Smallest encodings, used to refuse counts that cannot fit in the bytes left:
# a key/value is a length, >= 1 key byte, a type and >= 1 value byte; a tensor
# info is a name length, >= 1 name byte, n_dims, >= 1 dim, a type and an offset.
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8

# GGUF metadata value types (gguf.constants.GGUFValueType).
_T_UINT8, _T_INT8, _T_UINT16, _T_INT16, _T_UINT32, _T_INT32 = 0, 1, 2, 3, 4, 5
_T_FLOAT32, _T_BOOL, _T_STRING, _T_ARRAY, _T_UINT64, _T_INT64, _T_FLOAT64 = (
    6,
    7,
    8,
    9,
    10,
    11,
    12,
)
_SCALAR_FORMATS: dict[int, str] = {
    _T_UINT8: "<B",
    _T_INT8: "<b",
    _T_UINT16: "<H",
    _T_INT16: "<h",
    _T_UINT32: "<I",
    _T_INT32: "<i",
    _T_FLOAT32: "<f",
    _T_BOOL: "<?",
    _T_UINT64: "<Q",
    _T_INT64: "<q",
    _T_FLOAT64: "<d",
}
_VALUE_TYPE_NAMES = {
    _T_UINT8: "UINT8",
    _T_INT8: "INT8",
    _T_UINT16: "UINT16",
    _T_INT16: "INT16",
    _T_UINT32: "UINT32",
    _T_INT32: "INT32",
    _T_FLOAT32: "FLOAT32",
    _T_BOOL: "BOOL",
    _T_STRING: "STRING",
    _T_ARRAY: "ARRAY",
    _T_UINT64: "UINT64",
    _T_INT64: "INT64",
    _T_FLOAT64: "FLOAT64",
}
_SMALL_ARRAY_LEN = 64  # arrays up to this length are kept in the summary

# Jinja constructs that only a template trying to escape its sandbox needs.
_SUSPICIOUS_TEMPLATE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"__\w+__", "a dunder attribute ({match})"),
    (r"\bimport\b", "an import ({match})"),
    (r"\b(?:os|sys|subprocess|builtins|importlib)\s*\.", "a Python module ({match})"),
    (r"\b(?:eval|exec|compile|open|getattr|globals|locals)\s*\(", "a call ({match})"),
    (r"\|\s*attr\b", "the attr filter ({match})"),
    (r"\b(?:lipsum|cycler|joiner|self|config|request)\b", "a global ({match})"),
    (r"\bmro\b|\bfunc_globals\b|\bf_globals\b|\bgi_frame\b", "{match}"),
)
_JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


class GgufRejected(Exception):
    """Raised inside the child: the file broke one of the checks."""


class _Reader:
    """Reads a file front to back, refusing to read past its end."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.size = size
        self.pos = 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.left:
            raise GgufRejected(
                f"The file is truncated or corrupt: {what} needs {n:,} bytes at "
                f"offset {self.pos:,}, but only {self.left:,} remain."
            )
        data = self._fh.read(n)
        if len(data) != n:
            raise GgufRejected(f"The file changed while it was read ({what}).")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise GgufRejected(
                f"The file is truncated or corrupt: {what} needs {n:,} bytes at "
                f"offset {self.pos:,}, but only {self.left:,} remain."
            )
        self._fh.seek(n, io.SEEK_CUR)
        self.pos += n

    def unpack(self, fmt: str, what: str) -> Any:
        (value,) = struct.unpack(fmt, self.read(struct.calcsize(fmt), what))
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", what))

    def string_length(self, what: str, limit: int) -> int:
        length = self.u64(f"the length of {what}")
        if length > limit or length > self.left:
            raise GgufRejected(
                f"{what} claims a length of {length:,} bytes, but "
                f"{min(limit, self.left):,} is the most possible here."
            )
        return length

    def text(self, what: str, limit: int, *, strict: bool) -> str:
        raw = self.read(self.string_length(what, limit), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if strict:
                raise GgufRejected(f"{what} is not valid UTF-8.") from None
            return raw.decode("utf-8", errors="replace")


@dataclass
class ArraySummary:
    """A metadata array: its item type and length, and its values if short."""

    item_type: str
    length: int
    values: list[Any] | None  # kept for small arrays only


def _read_value(r: _Reader, vtype: int, key: str, *, in_array: bool) -> Any:
    fmt = _SCALAR_FORMATS.get(vtype)
    if fmt is not None:
        return r.unpack(fmt, f"the value of {key!r}")
    if vtype == _T_STRING:
        return r.text(f"the value of {key!r}", MAX_STRING_BYTES, strict=False)
    if vtype == _T_ARRAY:
        if in_array:
            raise GgufRejected(
                f"Metadata {key!r} nests arrays, which GGUF models never do."
            )
        return _read_array(r, key)
    raise GgufRejected(f"Metadata {key!r} has unknown value type {vtype}.")


def _read_array(r: _Reader, key: str) -> ArraySummary:
    item_type = r.u32(f"the item type of {key!r}")
    if item_type not in _VALUE_TYPE_NAMES:
        raise GgufRejected(f"Metadata array {key!r} has unknown item type {item_type}.")
    length = r.u64(f"the length of {key!r}")
    fmt = _SCALAR_FORMATS.get(item_type)
    min_item_bytes = struct.calcsize(fmt) if fmt else 8
    if length > MAX_ARRAY_LEN or length * min_item_bytes > r.left:
        raise GgufRejected(
            f"Metadata array {key!r} claims {length:,} items, more than the "
            f"{r.left:,} bytes left in the file can hold."
        )
    keep = length <= _SMALL_ARRAY_LEN
    values: list[Any] = []
    if fmt is not None:
        size = struct.calcsize(fmt)
        if keep:
            raw = r.read(size * length, f"the items of {key!r}")
            values = [v[0] for v in struct.iter_unpack(fmt, raw)]
        else:
            r.skip(size * length, f"the items of {key!r}")
    elif item_type == _T_STRING:
        for index in range(length):
            what = f"item {index} of {key!r}"
            if keep:
                values.append(r.text(what, MAX_STRING_BYTES, strict=False))
            else:
                r.skip(r.string_length(what, MAX_STRING_BYTES), what)
    else:
        raise GgufRejected(
            f"Metadata {key!r} nests arrays, which GGUF models never do."
        )
    return ArraySummary(_VALUE_TYPE_NAMES[item_type], length, values if keep else None)


def _ggml_type_table() -> dict[int, tuple[str, int, int]]:
    """ggml type id -> (name, block size, bytes per block), from the pinned gguf-py."""
    from gguf.constants import GGML_QUANT_SIZES

    return {
        int(t): (t.name, blck, size) for t, (blck, size) in GGML_QUANT_SIZES.items()
    }


def template_warnings(template: str) -> list[str]:
    """Reasons a chat template looks like it tries to run code; empty if none."""
    found: list[str] = []
    code = " ".join(m.group(0) for m in _JINJA_CODE.finditer(template))
    for pattern, label in _SUSPICIOUS_TEMPLATE_PATTERNS:
        for match in re.finditer(pattern, code):
            text = label.format(match=match.group(0))
            if text not in found:
                found.append(text)
    return found


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def parse_gguf_header(path: Path) -> dict[str, Any]:
    """Parse and check a GGUF header with every length bounded; GgufRejected if bad.

    Plain Python, no mmap: safe on hostile input, but call it through
    :func:`inspect_gguf` for resource limits.
    """
    size = path.stat().st_size
    types = _ggml_type_table()
    with path.open("rb", buffering=1 << 16) as fh:
        r = _Reader(fh, size)
        if size < 4 or r.read(4, "the magic number") != GGUF_MAGIC:
            raise GgufRejected(
                "This is not a GGUF file (it does not start with 'GGUF')."
            )
        version = r.u32("the version")
        if version not in SUPPORTED_VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            if swapped in SUPPORTED_VERSIONS:
                raise GgufRejected(
                    "This GGUF file is big-endian; only little-endian is supported."
                )
            raise GgufRejected(
                f"GGUF version {version} is not supported (only versions 2 and 3)."
            )
        tensor_count = r.u64("the tensor count")
        kv_count = r.u64("the metadata count")
        if tensor_count > MAX_TENSORS or tensor_count * _MIN_TENSOR_INFO_BYTES > r.left:
            raise GgufRejected(
                f"The header claims {tensor_count:,} tensors, which cannot fit in a "
                f"{size:,}-byte file."
            )
        if kv_count > MAX_KV or kv_count * _MIN_KV_BYTES > r.left:
            raise GgufRejected(
                f"The header claims {kv_count:,} metadata entries, which cannot fit "
                f"in a {size:,}-byte file."
            )
        if tensor_count == 0:
            raise GgufRejected("The file has no tensors: it is not a model.")

        metadata: dict[str, Any] = {}
        for index in range(kv_count):
            key = r.text(f"metadata key #{index}", MAX_KEY_BYTES, strict=True)
            if key in metadata:
                raise GgufRejected(f"Metadata key {key!r} appears twice.")
            vtype = r.u32(f"the type of {key!r}")
            metadata[key] = _read_value(r, vtype, key, in_array=False)

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (
            isinstance(alignment, ArraySummary)
            or not isinstance(alignment, int)
            or (isinstance(alignment, bool))
        ):
            raise GgufRejected("general.alignment must be an integer.")
        if alignment <= 0 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
            raise GgufRejected(
                f"general.alignment is {alignment}; it must be a power of two up to "
                f"{MAX_ALIGNMENT:,}."
            )

        tensors: list[tuple[str, int, list[int], int]] = []
        names: set[str] = set()
        for index in range(tensor_count):
            name = r.text(
                f"the name of tensor #{index}", MAX_TENSOR_NAME_BYTES, strict=True
            )
            if name in names:
                raise GgufRejected(f"Tensor {name!r} appears twice.")
            names.add(name)
            n_dims = r.u32(f"the dimension count of {name!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GgufRejected(
                    f"Tensor {name!r} has {n_dims} dimensions; ggml supports 1 to {MAX_DIMS}."
                )
            dims = [r.u64(f"dimension {d} of {name!r}") for d in range(n_dims)]
            ggml_type = r.u32(f"the type of {name!r}")
            offset = r.u64(f"the data offset of {name!r}")
            tensors.append((name, ggml_type, dims, offset))
        header_end = r.pos

    data_offset = _align_up(header_end, alignment)
    if data_offset > size:
        raise GgufRejected("The file ends before its tensor data starts.")
    histogram: dict[str, int] = {}
    tensor_types: dict[str, str] = {}
    spans: list[tuple[int, int, str]] = []
    parameter_count = 0
    data_bytes = 0
    for name, ggml_type, dims, offset in tensors:
        if ggml_type not in types:
            raise GgufRejected(f"Tensor {name!r} has unknown ggml type {ggml_type}.")
        type_name, block, block_bytes = types[ggml_type]
        n_elements = 1
        for dim in dims:
            if dim > INT64_MAX:
                raise GgufRejected(f"Tensor {name!r} has a dimension of {dim:,}.")
            n_elements *= dim
            if n_elements > INT64_MAX:
                raise GgufRejected(
                    f"Tensor {name!r} has dimensions {dims} whose product overflows."
                )
        if dims[0] % block:
            raise GgufRejected(
                f"Tensor {name!r} has {dims[0]:,} columns, not a multiple of "
                f"{type_name}'s block size {block}."
            )
        n_bytes = n_elements // block * block_bytes
        if offset % alignment:
            raise GgufRejected(
                f"Tensor {name!r} starts at offset {offset:,}, not a multiple of the "
                f"alignment {alignment}."
            )
        if data_offset + offset + n_bytes > size:
            raise GgufRejected(
                f"Tensor {name!r} ({n_bytes:,} bytes at data offset {offset:,}) ends "
                f"past the end of the {size:,}-byte file."
            )
        spans.append((offset, offset + n_bytes, name))
        histogram[type_name] = histogram.get(type_name, 0) + 1
        tensor_types[name] = type_name
        parameter_count += n_elements
        data_bytes += n_bytes
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise GgufRejected(f"Tensors {first!r} and {second!r} overlap in the file.")

    return {
        "size_bytes": size,
        "version": version,
        "tensor_count": tensor_count,
        "kv_count": kv_count,
        "alignment": alignment,
        "data_offset": data_offset,
        "metadata": metadata,
        "types_histogram": histogram,
        "tensor_types": tensor_types,
        "parameter_count": parameter_count,
        "tensor_data_bytes": data_bytes,
        "tensors": tensors,
    }
