"""What a job's quality is measured against, named for what it is.

Every measurement compares a quantized file with a *reference* model on the same
tokens. For a float source (an F16/BF16 GGUF, a Hugging Face checkpoint) the
reference is the unquantized model. For a source that is already quantized (the
bundled Q4_1 sample, a Q4_K_M upload) the reference is that file dequantized: its
loss is already baked in, so the measured loss adds to what the source lost, and it
must never be called "unquantized" or "full precision".

Plain Python (no Django): the job's child process describes the reference, the web
process reads it back from the stored result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


def _type_name(file_type: object) -> str | None:
    """'MOSTLY_Q4_1' → 'Q4_1'; None when unknown."""
    if not isinstance(file_type, str) or not file_type.strip():
        return None
    return file_type.strip().removeprefix("MOSTLY_").removeprefix("ALL_")


def quantized_type(
    file_type: object, types_histogram: Mapping[str, int] | None = None
) -> str | None:
    """The quantization of a GGUF source ('Q4_1'), or None when it is all float."""
    if types_histogram is not None and set(types_histogram) <= FLOAT_TYPES:
        return None
    name = _type_name(file_type)
    if name in FLOAT_TYPES:
        return None
    if name is None and types_histogram:
        # No general.file_type: name it after its most common quantized tensor type.
        quantized = {t: n for t, n in types_histogram.items() if t not in FLOAT_TYPES}
        name = max(quantized, key=lambda t: quantized[t]) if quantized else None
    return name or "quantized"


def warning_for(source_type: str) -> str:
    """The warning shown wherever a requantized source's results are."""
    return (
        f"The source was already quantized ({source_type}): quality is measured "
        f"against the {source_type} file dequantized, not against an unquantized "
        f"model, so the loss shown adds to what {source_type} already lost."
    )


def dequantized(source_type: str) -> dict[str, Any]:
    """The reference of an already quantized source: the file, dequantized."""
    return {
        "kind": "dequantized",
        "source_type": source_type,
        "quantized_source": True,
        "label": f"the {source_type} file, dequantized",
        "warning": warning_for(source_type),
    }


def unquantized(label: str, *, kind: str = "source") -> dict[str, Any]:
    """The reference of a float source: the unquantized model itself."""
    return {
        "kind": kind,
        "source_type": None,
        "quantized_source": False,
        "label": label,
        "warning": "",
    }


def from_gguf_base(base: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference the GGUF backend made (its metadata ``base``), or None."""
    kind = base.get("kind")
    if kind == "dequantized":
        return dequantized(quantized_type(base.get("from")) or "quantized")
    if kind == "source":
        name = _type_name(base.get("file_type")) or "float"
        return unquantized(f"the source's own {name} weights (unquantized)")
    if kind == "converted":
        return unquantized(
            "the source checkpoint, converted to F16 (unquantized)", kind="converted"
        )
    return None


def describe(
    *, origin_type: str | None, base: Mapping[str, Any] | None, source_kind: str
) -> dict[str, Any]:
    """The reference of one result.

    ``origin_type`` is the quantization of the GGUF the job started from (None for a
    float or Hugging Face source); it wins over what the backend saw, since a torch
    method or a converted sample only ever sees the dequantized copy.
    """
    if origin_type:
        return dequantized(origin_type)
    if base:
        described = from_gguf_base(base)
        if described is not None:
            return described
    if source_kind == "gguf":
        return unquantized("the source's own float weights (unquantized)")
    return unquantized("the source checkpoint (unquantized)")


def from_metrics(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference stored with a result; for results stored before it was, the
    GGUF backend's ``metadata.base``; None when nothing says."""
    stored = metrics.get("reference")
    if isinstance(stored, Mapping) and stored.get("label"):
        return dict(stored)
    metadata = metrics.get("metadata")
    base = metadata.get("base") if isinstance(metadata, Mapping) else None
    return from_gguf_base(base) if isinstance(base, Mapping) else None
