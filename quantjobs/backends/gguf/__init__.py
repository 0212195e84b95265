"""llama.cpp GGUF backend: clean base, importance matrix, llama_model_quantize, checks.

The registry imports ``quantjobs.backends.gguf:GgufBackend``; the modules below
import llama_cpp, gguf and numpy only inside the functions that need them.
"""

from __future__ import annotations

from quantjobs.backends.gguf.backend import GgufBackend, sha256_file, verify_quantized
from quantjobs.backends.gguf.ftypes import GGUF_TYPES, GgufType, parse_gguf_format

__all__ = [
    "GGUF_TYPES",
    "GgufBackend",
    "GgufType",
    "parse_gguf_format",
    "sha256_file",
    "verify_quantized",
]
