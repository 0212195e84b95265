"""llama.cpp's GGUF file types: the one table of ``LLAMA_FTYPE_*`` numbers, default
tensor types, importance-matrix needs and block fallbacks.

The planner sizes files with it (``gguf_rules``, ``formats``, ``gguf_spec``) and the
GGUF backend (``quantjobs.backends.gguf.ftypes``) picks what a job makes from it, so
what is planned and what is made cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GgufFileType:
    """A llama-quantize file type (``LLAMA_FTYPE_*``) and its default tensor type.

    ``ftype_id`` is the ``enum llama_ftype`` value from ``llama.h`` (ABI-stable);
    ``default_type`` is ``llama_ftype_get_default_type``; ``needs_imatrix`` follows
    ``tensor_requires_imatrix`` in ``llama-quant.cpp``: a file with IQ1/IQ2/IQ3_XXS
    tensors, or Q2_K tensors in a Q2_K_S file, is refused without one. This is the
    one table: the GGUF backend (``quantjobs.backends.gguf.ftypes``) imports it.
    """

    name: str
    ftype_id: int
    default_type: str
    needs_imatrix: bool
    description: str


GGUF_FILE_TYPES: dict[str, GgufFileType] = {
    f.name: f
    for f in (
        GgufFileType("F32", 0, "F32", False, "32-bit float, no quantization"),
        GgufFileType("F16", 1, "F16", False, "16-bit float"),
        GgufFileType("BF16", 32, "BF16", False, "bfloat16"),
        GgufFileType("Q8_0", 7, "Q8_0", False, "8-bit, nearly lossless"),
        GgufFileType("Q6_K", 18, "Q6_K", False, "6-bit k-quant"),
        GgufFileType(
            "Q5_K_M", 17, "Q5_K", False, "5-bit k-quant, sensitive tensors at 6 bit"
        ),
        GgufFileType("Q5_K_S", 16, "Q5_K", False, "5-bit k-quant"),
        GgufFileType("Q5_1", 9, "Q5_1", False, "legacy 5-bit with offset"),
        GgufFileType("Q5_0", 8, "Q5_0", False, "legacy 5-bit"),
        GgufFileType(
            "Q4_K_M", 15, "Q4_K", False, "4-bit k-quant, sensitive tensors at 6 bit"
        ),
        GgufFileType("Q4_K_S", 14, "Q4_K", False, "4-bit k-quant"),
        GgufFileType("Q4_1", 3, "Q4_1", False, "legacy 4-bit with offset"),
        GgufFileType("Q4_0", 2, "Q4_0", False, "legacy 4-bit"),
        GgufFileType(
            "Q3_K_L", 13, "Q3_K", False, "3-bit k-quant, many tensors at 5 bit"
        ),
        GgufFileType(
            "Q3_K_M", 12, "Q3_K", False, "3-bit k-quant, some tensors at 4-5 bit"
        ),
        GgufFileType("Q3_K_S", 11, "Q3_K", False, "3-bit k-quant"),
        GgufFileType(
            "Q2_K",
            10,
            "Q2_K",
            False,
            "2-bit k-quant, attention and ffn_down at 3-4 bit",
        ),
        GgufFileType("Q2_K_S", 21, "Q2_K", True, "2-bit k-quant, small"),
        GgufFileType("IQ4_NL", 25, "IQ4_NL", False, "4.5-bit non-linear"),
        GgufFileType("IQ4_XS", 30, "IQ4_XS", False, "4.25-bit non-linear"),
        GgufFileType("IQ3_M", 27, "IQ3_S", False, "3.66-bit i-quant mix"),
        GgufFileType("IQ3_S", 26, "IQ3_S", False, "3.44-bit i-quant"),
        # Its middle layers' ffn_gate/ffn_up get IQ3_XXS, which llama-quantize
        # refuses to make without an importance matrix.
        GgufFileType("IQ3_XS", 22, "IQ3_S", True, "3.3-bit i-quant"),
        GgufFileType("IQ3_XXS", 23, "IQ3_XXS", True, "3.06-bit i-quant"),
        GgufFileType("IQ2_M", 29, "IQ2_S", True, "2.7-bit i-quant"),
        GgufFileType("IQ2_S", 28, "IQ2_XS", True, "2.5-bit i-quant"),
        GgufFileType("IQ2_XS", 20, "IQ2_XS", True, "2.31-bit i-quant"),
        GgufFileType("IQ2_XXS", 19, "IQ2_XXS", True, "2.06-bit i-quant"),
        GgufFileType("IQ1_M", 31, "IQ1_M", True, "1.75-bit i-quant"),
        GgufFileType("IQ1_S", 24, "IQ1_S", True, "1.56-bit i-quant"),
        GgufFileType(
            "TQ1_0", 36, "TQ1_0", False, "1.69-bit ternary (for ternary-trained models)"
        ),
        GgufFileType(
            "TQ2_0", 37, "TQ2_0", False, "2.06-bit ternary (for ternary-trained models)"
        ),
        GgufFileType("MXFP4_MOE", 38, "MXFP4", False, "MXFP4 experts, Q8_0 elsewhere"),
    )
}

GGUF_ALIGNMENT_BYTES = (
    32  # general.alignment default; every tensor's data starts aligned
)

# llama.cpp's fallback when a row does not fill whole blocks of the chosen type.
# (Builds before the 2025 rework sent Q2_K/Q3_K to IQ4_NL instead of Q4_0.)
GGUF_FALLBACK_TYPES: dict[str, str] = {
    **dict.fromkeys(
        ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS"),
        "IQ4_NL",
    ),
    **dict.fromkeys(("Q2_K", "Q3_K", "TQ1_0", "TQ2_0"), "Q4_0"),
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


def gguf_file_type(name: str) -> GgufFileType:
    """Look up a llama-quantize file type by name (case-insensitive)."""
    key = name.upper()
    if key not in GGUF_FILE_TYPES:
        raise ValueError(
            f"unknown GGUF file type {name!r}; expected one of "
            f"{', '.join(GGUF_FILE_TYPES)}"
        )
    return GGUF_FILE_TYPES[key]
