"""The GGUF output types we offer, as llama.cpp's ``llama-quantize`` names them.

Numbers are ``enum llama_ftype`` values from ``llama.h`` (ABI-stable: llama.cpp
never renumbers them; ``tests`` check them against ``llama_cpp``). ``base_type``
is the ggml type most weight matrices get (``llama_ftype_get_default_type``);
``needs_imatrix`` follows ``tensor_requires_imatrix`` in ``llama-quant.cpp``:
IQ1/IQ2/IQ3_XXS tensors, and Q2_K in a Q2_K_S file, are refused without one.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantjobs.backends.base import BackendError

__all__ = [
    "FALLBACK_TYPES",
    "FLOAT_TYPES",
    "GGUF_TYPES",
    "GgufType",
    "parse_gguf_format",
]


@dataclass(frozen=True)
class GgufType:
    """One llama.cpp file type (``llama_ftype``) we can produce."""

    name: str  # "Q4_K_M", as llama-quantize spells it
    ftype: int  # enum llama_ftype
    base_type: str  # ggml type of most weight matrices
    needs_imatrix: bool = False

    @property
    def is_float(self) -> bool:
        """F32 / F16 / BF16: a conversion, not a quantization."""
        return self.name in FLOAT_TYPES

    @property
    def format(self) -> str:
        """The planner's format string."""
        return f"gguf-{self.name}"


FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})

_TYPES = (
    GgufType("F32", 0, "F32"),
    GgufType("F16", 1, "F16"),
    GgufType("BF16", 32, "BF16"),
    GgufType("Q8_0", 7, "Q8_0"),
    GgufType("Q6_K", 18, "Q6_K"),
    GgufType("Q5_K_M", 17, "Q5_K"),
    GgufType("Q5_K_S", 16, "Q5_K"),
    GgufType("Q5_1", 9, "Q5_1"),
    GgufType("Q5_0", 8, "Q5_0"),
    GgufType("Q4_K_M", 15, "Q4_K"),
    GgufType("Q4_K_S", 14, "Q4_K"),
    GgufType("Q4_1", 3, "Q4_1"),
    GgufType("Q4_0", 2, "Q4_0"),
    GgufType("IQ4_XS", 30, "IQ4_XS"),
    GgufType("IQ4_NL", 25, "IQ4_NL"),
    GgufType("Q3_K_L", 13, "Q3_K"),
    GgufType("Q3_K_M", 12, "Q3_K"),
    GgufType("Q3_K_S", 11, "Q3_K"),
    GgufType("IQ3_M", 27, "IQ3_S"),
    GgufType("IQ3_S", 26, "IQ3_S"),
    GgufType("IQ3_XS", 22, "IQ3_S", needs_imatrix=True),
    GgufType("IQ3_XXS", 23, "IQ3_XXS", needs_imatrix=True),
    GgufType("Q2_K", 10, "Q2_K"),
    GgufType("Q2_K_S", 21, "Q2_K", needs_imatrix=True),
    GgufType("IQ2_M", 29, "IQ2_S", needs_imatrix=True),
    GgufType("IQ2_S", 28, "IQ2_XS", needs_imatrix=True),
    GgufType("IQ2_XS", 20, "IQ2_XS", needs_imatrix=True),
    GgufType("IQ2_XXS", 19, "IQ2_XXS", needs_imatrix=True),
    GgufType("IQ1_M", 31, "IQ1_M", needs_imatrix=True),
    GgufType("IQ1_S", 24, "IQ1_S", needs_imatrix=True),
)

GGUF_TYPES: dict[str, GgufType] = {t.name: t for t in _TYPES}

# llama-quantize's aliases.
_ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}

FALLBACK_TYPES: dict[str, str] = {
    # tensor_type_fallback() in llama-quant.cpp: what a tensor whose row length
    # is not a multiple of the block size gets instead (then F16 if that fails).
    "IQ1_S": "IQ4_NL",
    "IQ1_M": "IQ4_NL",
    "IQ2_XXS": "IQ4_NL",
    "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL",
    "IQ3_S": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0",
    "Q3_K": "Q4_0",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


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
