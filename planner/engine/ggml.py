"""ggml tensor types: block sizes and bytes per block, as llama.cpp stores them.

Numbers follow ggml's type traits (``blck_size``, ``type_size``) and gguf-py's
``GGML_QUANT_SIZES``: a row of ``ne0`` elements of a block type takes
``ne0 / blck_size * type_size`` bytes, and ``ne0`` must be a multiple of the block.
"""

from __future__ import annotations

from dataclasses import dataclass

QK_K = 256  # super-block size of the k-quants and i-quants


@dataclass(frozen=True, slots=True)
class GgmlType:
    """One ggml tensor type: its block size and the bytes one block takes."""

    name: str
    type_id: int
    block_size: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per element, scales and minimums included."""
        return self.block_bytes * 8 / self.block_size

    @property
    def is_quantized(self) -> bool:
        """True for block-quantized types (not F32/F16/BF16/integers)."""
        return self.name not in _FLOAT_OR_INT_TYPES


_FLOAT_OR_INT_TYPES = frozenset(
    {"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"}
)

_TYPES: tuple[GgmlType, ...] = (
    GgmlType("F32", 0, 1, 4),
    GgmlType("F16", 1, 1, 2),
    GgmlType("Q4_0", 2, 32, 2 + 16),
    GgmlType("Q4_1", 3, 32, 2 + 2 + 16),
    GgmlType("Q5_0", 6, 32, 2 + 4 + 16),
    GgmlType("Q5_1", 7, 32, 2 + 2 + 4 + 16),
    GgmlType("Q8_0", 8, 32, 2 + 32),
    GgmlType("Q8_1", 9, 32, 4 + 4 + 32),
    GgmlType("Q2_K", 10, QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    GgmlType("Q3_K", 11, QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    GgmlType("Q4_K", 12, QK_K, 2 + 2 + QK_K // 2 + 12),
    GgmlType("Q5_K", 13, QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    GgmlType("Q6_K", 14, QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    GgmlType("Q8_K", 15, QK_K, 4 + QK_K + QK_K // 8),
    GgmlType("IQ2_XXS", 16, QK_K, 2 + QK_K // 4),
    GgmlType("IQ2_XS", 17, QK_K, 2 + QK_K // 4 + QK_K // 32),
    GgmlType("IQ3_XXS", 18, QK_K, 2 + QK_K // 4 + QK_K // 8),
    GgmlType("IQ1_S", 19, QK_K, 2 + QK_K // 8 + QK_K // 16),
    GgmlType("IQ4_NL", 20, 32, 2 + 16),
    GgmlType("IQ3_S", 21, QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    GgmlType("IQ2_S", 22, QK_K, 2 + QK_K // 4 + QK_K // 16),
    GgmlType("IQ4_XS", 23, QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    GgmlType("I8", 24, 1, 1),
    GgmlType("I16", 25, 1, 2),
    GgmlType("I32", 26, 1, 4),
    GgmlType("I64", 27, 1, 8),
    GgmlType("F64", 28, 1, 8),
    GgmlType("IQ1_M", 29, QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    GgmlType("BF16", 30, 1, 2),
    GgmlType("TQ1_0", 34, QK_K, 2 + 4 * 13),
    GgmlType("TQ2_0", 35, QK_K, 2 + 64),
    GgmlType("MXFP4", 39, 32, 1 + 16),
)

GGML_TYPES: dict[str, GgmlType] = {t.name: t for t in _TYPES}


def ggml_type(name: str) -> GgmlType:
    """Return the ggml type called ``name`` (upper case, e.g. ``Q4_K``)."""
    try:
        return GGML_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown ggml type {name!r}") from None


def ggml_row_bytes(type_name: str, ne0: int) -> int:
    """Bytes of one row of ``ne0`` elements; ``ne0`` must fit whole blocks."""
    t = ggml_type(type_name)
    if ne0 % t.block_size:
        raise ValueError(
            f"{ne0} elements is not a multiple of {t.name}'s block {t.block_size}"
        )
    return ne0 // t.block_size * t.block_bytes


def ggml_tensor_bytes(type_name: str, shape: tuple[int, ...]) -> int:
    """Bytes of a contiguous tensor of ``shape`` (ggml order: ne0 first)."""
    rows = 1
    for n in shape[1:]:
        rows *= n
    return ggml_row_bytes(type_name, shape[0]) * rows


def ggml_pad(n_bytes: int, alignment: int) -> int:
    """Round ``n_bytes`` up to a multiple of ``alignment``."""
    return (n_bytes + alignment - 1) // alignment * alignment
