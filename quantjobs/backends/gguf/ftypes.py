"""The GGUF output types a job can produce, as llama.cpp's ``llama-quantize`` names them.

The numbers, default tensor types, importance-matrix needs and fallbacks live in
one table, the planner engine's ``planner.engine.gguf_types.GGUF_FILE_TYPES`` (the
planner sizes what the backend makes, so both must agree); this module picks the
types a job offers and words them for the backend (``ftype``, ``base_type``).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.engine.gguf_types import (
    GGUF_FALLBACK_TYPES,
    GGUF_FILE_TYPES,
    GgufFileType,
)
from quantjobs.backends.base import BackendError

__all__ = [
    "FALLBACK_TYPES",
    "FLOAT_TYPES",
    "GGUF_TYPES",
    "GgufType",
    "parse_gguf_format",
]

FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})

# The engine's table also sizes TQ1_0/TQ2_0 (ternary-trained models only) and
# MXFP4_MOE (MoE experts only); a job on an ordinary model cannot make them.
_NOT_OFFERED = frozenset({"TQ1_0", "TQ2_0", "MXFP4_MOE"})

# tensor_type_fallback() in llama-quant.cpp: what a tensor whose row length is not
# a multiple of the block size gets instead (then F16 if that fails).
FALLBACK_TYPES: dict[str, str] = GGUF_FALLBACK_TYPES


@dataclass(frozen=True)
class GgufType:
    """One llama.cpp file type (``llama_ftype``) a job can produce."""

    file_type: GgufFileType

    @property
    def name(self) -> str:
        """``"Q4_K_M"``, as llama-quantize spells it."""
        return self.file_type.name

    @property
    def ftype(self) -> int:
        """The ``enum llama_ftype`` value."""
        return self.file_type.ftype_id

    @property
    def base_type(self) -> str:
        """The ggml type of most weight matrices."""
        return self.file_type.default_type

    @property
    def needs_imatrix(self) -> bool:
        """Whether llama-quantize refuses this type without an importance matrix."""
        return self.file_type.needs_imatrix

    @property
    def is_float(self) -> bool:
        """F32 / F16 / BF16: a conversion, not a quantization."""
        return self.name in FLOAT_TYPES

    @property
    def format(self) -> str:
        """The planner's format string."""
        return f"gguf-{self.name}"


GGUF_TYPES: dict[str, GgufType] = {
    name: GgufType(ft)
    for name, ft in GGUF_FILE_TYPES.items()
    if name not in _NOT_OFFERED
}

# llama-quantize's aliases.
_ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}


def parse_gguf_format(fmt: str) -> GgufType:
    """``"gguf-Q4_K_M"`` (or ``"Q4_K_M"``) -> its GgufType; BackendError if unknown."""
    name = fmt.strip()
    if name.lower().startswith("gguf-"):
        name = name[5:]
    name = name.upper()
    name = _ALIASES.get(name, name)
    try:
        return GGUF_TYPES[name]
    except KeyError:
        known = ", ".join(GGUF_TYPES)
        raise BackendError(
            f"Unknown GGUF type {fmt!r}; choose one of: {known}."
        ) from None
