"""Size of a whole ``.gguf`` file: header (metadata, tensor infos), padding, data.

The metadata block is estimated, not known: it holds the tokenizer, whose strings
we do not have. The averages below were measured on the product's sample GGUF
(SmolLM2-135M-Instruct, a 49,152-token byte-level BPE vocabulary with 48,900
merges): 7.51 bytes per token string, 8.54 per merge, 1.77 MB of metadata in all.
Sizes are: vocab * (8 + avg token) for ``tokenizer.ggml.tokens``, vocab * 4 for
``token_type`` (and ``scores`` for SentencePiece), merges * (8 + avg merge),
plus ~6 kB of scalar keys and chat template.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from .ggml import ggml_pad
from .gguf_rules import _ordered, gguf_tensor_sizes
from .gguf_types import GGUF_ALIGNMENT_BYTES
from .spec import ModelSpec
from .tensors import TensorInfo


@lru_cache(maxsize=256)
def _header_bytes(spec: ModelSpec) -> int:
    """GGUF header bytes: fixed fields, metadata and tensor infos (type-independent)."""
    names = [t for t, _, _ in _ordered(spec)]
    # A spec read from a GGUF file knows its real key/value block.
    metadata = spec.stored_metadata_bytes or gguf_metadata_bytes(spec)
    return 4 + 4 + 8 + 8 + metadata + gguf_tensor_info_bytes(names)


_BPE_TOKEN_AVG_BYTES = 7.5  # byte-level BPE tokens (SmolLM2 GGUF: 7.51 bytes)
_BPE_MERGE_AVG_BYTES = 8.5  # "a b" merge strings (SmolLM2 GGUF: 8.54 bytes)
_SPM_TOKEN_AVG_BYTES = 7.0  # SentencePiece vocabularies ("▁" is 3 bytes in UTF-8)
_FIXED_METADATA_BYTES = 6_000  # ~30 scalar keys, general.*, and a typical chat template
_SPM_VOCAB_SIZES = frozenset({32_000, 32_064, 32_768, 256_000, 262_144, 262_208})


def tokenizer_is_sentencepiece(spec: ModelSpec) -> bool:
    """Guess the tokenizer kind: SentencePiece (scores, no merges) or byte-level BPE."""
    if spec.model_type.startswith("gemma") or spec.vocab_size in _SPM_VOCAB_SIZES:
        return True
    # Phi-3 and 3.5 keep Llama-2's SentencePiece vocabulary (32,064 with added
    # tokens, fewer in trimmed fine-tunes); Phi-4 (also "phi3") has a 100k BPE.
    return spec.model_type == "phi3" and spec.vocab_size <= 32_064


def gguf_metadata_bytes(spec: ModelSpec) -> int:
    """Estimated bytes of the GGUF key/value block, dominated by the tokenizer arrays."""
    v = spec.vocab_size
    n = _FIXED_METADATA_BYTES
    n += v * (
        8 + 4
    )  # tokenizer.ggml.token_type: i32 each (+ string length prefixes below)
    if tokenizer_is_sentencepiece(spec):
        n += int(v * _SPM_TOKEN_AVG_BYTES) + v * 4  # tokens + f32 scores
    else:
        merges = max(0, v - 256)
        n += int(v * _BPE_TOKEN_AVG_BYTES) + int(merges * (8 + _BPE_MERGE_AVG_BYTES))
    return n


def gguf_tensor_info_bytes(tensors: Sequence[TensorInfo]) -> int:
    """Bytes of the tensor info records: name, dims, type and offset of each tensor."""
    return sum(8 + len(t.name) + 4 + 8 * len(t.shape) + 4 + 8 for t in tensors)


def gguf_file_bytes(spec: ModelSpec, gguf_type: str) -> int:
    """Estimated size of the whole ``.gguf`` file: header, padding and tensor data."""
    sizes = gguf_tensor_sizes(spec, gguf_type)
    header = _header_bytes(spec)
    align = GGUF_ALIGNMENT_BYTES
    data = sum((n + align - 1) // align * align for _, _, n in sizes)
    return ggml_pad(header, GGUF_ALIGNMENT_BYTES) + data
