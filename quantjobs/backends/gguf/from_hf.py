"""Convert a Hugging Face safetensors checkpoint of a Llama-family model to GGUF.

``convert_hf_to_gguf.py`` is not part of the ``gguf`` package, so this is a
small converter for the architectures llama.cpp runs as ``llama`` (Llama,
SmolLM, Mistral) and ``qwen2``, built on gguf-py's pieces: ``GGUFWriter``,
``get_tensor_name_map`` for tensor names, ``SpecialVocab`` for special tokens
and the chat template, and its SentencePiece / Llama-HF vocab readers.

Two details matter for correctness:

* Llama's Q and K projections are stored by Hugging Face with the rotary
  halves split ("rotate_half" layout); llama.cpp expects the two halves of
  each head interleaved. Each head's rows are therefore reordered from
  ``[first half, second half]`` to ``[r0, r0', r1, r1', ...]``. Qwen2 is
  converted without this reordering, as llama.cpp's converter does.
* ``tokenizer.ggml.pre`` selects llama.cpp's pre-tokenizer regexes; it is
  recognised from ``tokenizer.json``'s ``pre_tokenizer`` and can be forced
  with the ``tokenizer_pre`` option.

Safetensors files are read with a bounded reader of our own: the header is
checked against the file size before any tensor is mapped, and BF16 weights
(which numpy cannot represent) are widened to F32 by bit shifting.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantjobs.backends.base import BackendError, LogFn, ProgressFn

__all__ = ["ConvertResult", "convert_hf_to_gguf", "detect_pre_tokenizer", "permute_qk"]

_ARCHITECTURES = {
    # HF architecture -> (llama.cpp arch, reorder Q/K rows for llama's rope)
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
}
_OUT_TYPES = {"F32": 0, "F16": 1, "BF16": 32}  # -> llama_ftype
_MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024
_ST_DTYPES: dict[str, tuple[str, int]] = {
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
}

# tokenizer.json pre-tokenizer split patterns of well-known models -> llama.cpp name.
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PATTERNS = {_LLAMA3_PATTERN: "llama-bpe", _QWEN2_PATTERN: "qwen2"}


@dataclass(frozen=True)
class ConvertResult:
    """What the conversion wrote."""

    path: Path
    architecture: str
    tensor_count: int
    vocab_size: int
    tokenizer_model: str
    tokenizer_pre: str | None


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _StTensor:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute offsets in the file
    end: int


def _read_safetensors_index(path: Path) -> dict[str, _StTensor]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise BackendError(f"{path.name} is not a safetensors file (too short).")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER_BYTES):
            raise BackendError(f"{path.name} has a corrupt safetensors header length.")
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendError(
                f"{path.name} has a corrupt safetensors header."
            ) from None
    if not isinstance(header, dict):
        raise BackendError(f"{path.name} has a corrupt safetensors header.")
    data_start = 8 + header_len
    tensors: dict[str, _StTensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise BackendError(
                f"{path.name}: tensor {name!r} has a corrupt entry."
            ) from None
        if dtype not in _ST_DTYPES:
            raise BackendError(
                f"{path.name}: tensor {name!r} is {dtype}; only F32, F16 and BF16 "
                "checkpoints can be converted (upload the unquantized model)."
            )
        itemsize = _ST_DTYPES[dtype][1]
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= size - data_start:
            raise BackendError(f"{path.name}: tensor {name!r} lies outside the file.")
        if (end - begin) != math.prod(shape) * itemsize:
            raise BackendError(f"{path.name}: tensor {name!r} has the wrong byte size.")
        tensors[name] = _StTensor(
            path, dtype, shape, data_start + begin, data_start + end
        )
    return tensors


def _checkpoint_tensors(model_dir: Path) -> dict[str, _StTensor]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        if any(model_dir.glob("*.bin")) or any(model_dir.glob("*.pt")):
            raise BackendError(
                "Only safetensors checkpoints are accepted (pickle-based .bin / .pt "
                "files can run code when loaded). Convert the model to safetensors."
            )
        raise BackendError(f"No .safetensors files in {model_dir.name}.")
    tensors: dict[str, _StTensor] = {}
    for file in files:
        for name, tensor in _read_safetensors_index(file).items():
            if name in tensors:
                raise BackendError(f"Tensor {name!r} appears in two safetensors files.")
            tensors[name] = tensor
    return tensors


def _load(tensor: _StTensor) -> npt.NDArray[np.float32]:
    numpy_dtype, _ = _ST_DTYPES[tensor.dtype]
    count = math.prod(tensor.shape)
    raw = (
        np.memmap(
            tensor.file,
            dtype=numpy_dtype,
            mode="r",
            offset=tensor.begin,
            shape=(count,),
        )
        if count
        else np.zeros(0, dtype=numpy_dtype)
    )
    if tensor.dtype == "BF16":
        # bfloat16 is the top half of a float32.
        values = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        values = raw.astype(np.float32)
    return values.reshape(tensor.shape)


# --------------------------------------------------------------------------
# tensors
# --------------------------------------------------------------------------


def permute_qk(weights: npt.NDArray[Any], n_head: int) -> npt.NDArray[Any]:
    """Reorder a Q or K projection's rows from HF's rotary layout to llama.cpp's.

    Within each head, HF keeps the first and second rotary halves as two
    blocks of rows; llama.cpp's rope pairs consecutive rows. Row ``r`` of the
    first half and row ``r`` of the second half become rows ``2r`` and ``2r+1``.
    """
    rows = weights.shape[0]
    if rows % (2 * n_head):
        raise BackendError(
            f"A Q/K projection of {rows} rows cannot hold {n_head} heads."
        )
    half = rows // n_head // 2
    per_head = weights.reshape(n_head, 2, half, *weights.shape[1:])
    return np.ascontiguousarray(per_head.swapaxes(1, 2)).reshape(weights.shape)


def _gguf_tensors(
    tensors: dict[str, _StTensor], arch: str, n_blocks: int
) -> list[tuple[str, _StTensor, str]]:
    import gguf

    arch_enum = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[arch]
    name_map = gguf.get_tensor_name_map(arch_enum, n_blocks)
    plan: list[tuple[str, _StTensor, str]] = []
    for hf_name, tensor in sorted(tensors.items()):
        if hf_name.endswith(".rotary_emb.inv_freq"):
            continue  # recomputed by llama.cpp from the rope parameters
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise BackendError(
                f"Tensor {hf_name!r} has no llama.cpp counterpart for {arch}; this "
                "checkpoint is not a plain decoder model of a supported architecture."
            )
        plan.append((hf_name, tensor, gguf_name))
    return plan


# --------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------


def detect_pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a byte-level BPE ``tokenizer.json``."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # llama.cpp's name (llama-vocab.cpp); "gpt2" is refused
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
    ):
        return "smollm"  # GPT-2's regex after splitting every digit
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern in _SPLIT_PATTERNS:
            return _SPLIT_PATTERNS[pattern]
    raise BackendError(
        f"Unrecognised tokenizer pre-tokenizer ({', '.join(map(str, kinds)) or 'none'}); "
        "set the option tokenizer_pre to the llama.cpp name (e.g. 'llama-bpe', "
        "'qwen2', 'smollm', 'gpt-2')."
    )


def _bpe_vocab(
    tokenizer_json: dict[str, Any], vocab_size: int
) -> tuple[list[bytes], list[int]]:
    from gguf import TokenType

    vocab: dict[str, int] = dict(tokenizer_json["model"]["vocab"])
    special: dict[str, bool] = {}
    for added in tokenizer_json.get("added_tokens", []):
        vocab[added["content"]] = int(added["id"])
        special[added["content"]] = bool(added.get("special"))
    by_id: dict[int, str] = {}
    for text, token_id in vocab.items():
        if token_id in by_id:
            raise BackendError(f"tokenizer.json maps two tokens to id {token_id}.")
        by_id[token_id] = text
    size = max(vocab_size, max(by_id) + 1)
    tokens: list[bytes] = []
    types: list[int] = []
    for token_id in range(size):
        found = by_id.get(token_id)
        if found is None:
            # Embedding rows beyond the tokenizer (padding to a round size).
            tokens.append(f"[PAD{token_id}]".encode())
            types.append(int(TokenType.UNUSED))
            continue
        text = found
        if text in special:
            tokens.append(text.encode("utf-8"))
            types.append(
                int(TokenType.CONTROL if special[text] else TokenType.USER_DEFINED)
            )
        else:
            tokens.append(text.encode("utf-8"))
            types.append(int(TokenType.NORMAL))
    return tokens, types


def _is_byte_level_bpe(tokenizer_json: dict[str, Any]) -> bool:
    # GPT-2-style byte-level BPE: its vocabulary is byte-level encoded ("Ġthe"),
    # which the ByteLevel pre-tokenizer step gives away (whatever the decoder).
    if (tokenizer_json.get("model") or {}).get("type") != "BPE":
        return False
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(step.get("type") == "ByteLevel" for step in steps)


def _add_tokenizer(
    writer: Any, model_dir: Path, vocab_size: int, pre_override: str | None, log: LogFn
) -> tuple[int, str, str | None]:
    import gguf

    tok_path = model_dir / "tokenizer.json"
    tokenizer_json: dict[str, Any] = {}
    if tok_path.is_file():
        tokenizer_json = json.loads(tok_path.read_text(encoding="utf-8"))
    pre: str | None
    byte_level = _is_byte_level_bpe(tokenizer_json)
    if byte_level:
        pre = pre_override or detect_pre_tokenizer(tokenizer_json)
        tokens, types = _bpe_vocab(tokenizer_json, vocab_size)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        tokenizer_model = "gpt2"
        n_tokens = len(tokens)
    else:
        # SentencePiece-style vocabularies (Llama 2, Mistral): gguf-py's readers.
        vocab: Any
        if (model_dir / "tokenizer.model").is_file():
            vocab = gguf.SentencePieceVocab(model_dir)
        elif tokenizer_json:
            vocab = gguf.LlamaHfVocab(model_dir)
        else:
            raise BackendError(
                "The checkpoint has no tokenizer.json or tokenizer.model."
            )
        tokens, scores, types = [], [], []
        for text, score, token_type in vocab.all_tokens():
            tokens.append(text)
            scores.append(score)
            types.append(int(token_type))
        for token_id in range(len(tokens), vocab_size):
            tokens.append(f"[PAD{token_id}]".encode())
            scores.append(-1000.0)
            types.append(int(gguf.TokenType.UNUSED))
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre(pre_override or "default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        tokenizer_model, pre, n_tokens = "llama", pre_override or "default", len(tokens)
    # SpecialVocab also writes the BPE merges (gguf-py knows both merge formats).
    special = gguf.SpecialVocab(model_dir, load_merges=byte_level, n_vocab=n_tokens)
    special.add_to_gguf(writer, quiet=True)
    log(f"tokenizer: {tokenizer_model}, {n_tokens:,} tokens, pre-tokenizer {pre}")
    return n_tokens, tokenizer_model, pre


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------


def _hparams(config: dict[str, Any], key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    if value is None:
        raise BackendError(f"config.json has no {key!r}.")
    return value


def convert_hf_to_gguf(
    model_dir: Path,
    dest: Path,
    *,
    out_type: str = "F16",
    progress: ProgressFn,
    log: LogFn,
    tokenizer_pre: str | None = None,
) -> ConvertResult:
    """Write the safetensors checkpoint in ``model_dir`` to ``dest`` as a GGUF.

    ``out_type`` (F16, BF16 or F32) applies to weight matrices; 1-D tensors
    (norms, biases) are F32, as in llama.cpp's converter.
    """
    import gguf
    from gguf.quants import quantize as gguf_quantize

    if out_type not in _OUT_TYPES:
        raise BackendError(f"Conversion writes F16, BF16 or F32, not {out_type}.")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise BackendError(
            f"{model_dir.name} has no config.json: not a Hugging Face model."
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    hf_arch = archs[0] if archs else str(config.get("model_type"))
    if hf_arch not in _ARCHITECTURES:
        supported = ", ".join(sorted(_ARCHITECTURES))
        raise BackendError(
            f"{hf_arch} models cannot be converted; supported architectures: {supported}."
        )
    arch, reorder_qk = _ARCHITECTURES[hf_arch]
    tensors = _checkpoint_tensors(model_dir)
    rope_scaling = config.get("rope_scaling")
    scaling_type = (rope_scaling or {}).get("rope_type") or (rope_scaling or {}).get(
        "type"
    )
    if rope_scaling and scaling_type not in ("linear", "default"):
        raise BackendError(
            f"rope_scaling type {scaling_type!r} is not supported by this converter "
            "(only none and linear)."
        )

    n_layer = int(_hparams(config, "num_hidden_layers"))
    n_embd = int(_hparams(config, "hidden_size"))
    n_head = int(_hparams(config, "num_attention_heads"))
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = int(config.get("head_dim") or n_embd // n_head)
    vocab_size = int(_hparams(config, "vocab_size"))
    plan = _gguf_tensors(tensors, arch, n_layer)

    writer = gguf.GGUFWriter(str(dest), arch)
    try:
        name = config.get("_name_or_path") or model_dir.name
        writer.add_name(str(Path(str(name)).name) or "model")
        writer.add_context_length(int(_hparams(config, "max_position_embeddings")))
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(int(_hparams(config, "intermediate_size")))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
        writer.add_layer_norm_rms_eps(float(_hparams(config, "rms_norm_eps")))
        writer.add_rope_dimension_count(head_dim)
        if head_dim != n_embd // n_head:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        if rope_scaling and scaling_type == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(rope_scaling["factor"]))
        writer.add_file_type(_OUT_TYPES[out_type])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        n_tokens, tok_model, pre = _add_tokenizer(
            writer, model_dir, vocab_size, tokenizer_pre, log
        )
        writer.add_vocab_size(n_tokens)

        # Tensor infos first (the header precedes the data), then the data, one
        # tensor at a time so memory stays at one tensor.
        def out_dtype(tensor: _StTensor) -> gguf.GGMLQuantizationType:
            if len(tensor.shape) == 1 or out_type == "F32":
                return gguf.GGMLQuantizationType.F32
            if out_type == "BF16":
                return gguf.GGMLQuantizationType.BF16
            return gguf.GGMLQuantizationType.F16

        for _hf_name, tensor, gguf_name in plan:
            qtype = out_dtype(tensor)
            elem = 4 if qtype == gguf.GGMLQuantizationType.F32 else 2
            np_dtype: type[np.generic] = np.float32 if elem == 4 else np.float16
            shape: tuple[int, ...] = tensor.shape
            if qtype == gguf.GGMLQuantizationType.BF16:
                # gguf-py hands BF16 over as raw bytes: two per element.
                np_dtype = np.uint8
                shape = (*tensor.shape[:-1], tensor.shape[-1] * 2)
            writer.add_tensor_info(
                gguf_name, shape, np.dtype(np_dtype), math.prod(tensor.shape) * elem,
                raw_dtype=qtype,
            )  # fmt: skip
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for index, (hf_name, tensor, _gguf_name) in enumerate(plan):
            values = _load(tensor)
            if reorder_qk and hf_name.endswith("q_proj.weight"):
                values = permute_qk(values, n_head)
            elif reorder_qk and hf_name.endswith("k_proj.weight"):
                values = permute_qk(values, n_head_kv)
            qtype = out_dtype(tensor)
            if qtype == gguf.GGMLQuantizationType.F32:
                data: npt.NDArray[Any] = values.astype(np.float32)
            elif qtype == gguf.GGMLQuantizationType.F16:
                data = values.astype(np.float16)
                if not np.isfinite(data).all():
                    raise BackendError(
                        f"{hf_name} holds values beyond F16's range; convert to BF16 "
                        "or F32 instead."
                    )
            else:
                data = gguf_quantize(values, gguf.GGMLQuantizationType.BF16)
            writer.write_tensor_data(data)
            progress((index + 1) / len(plan), "convert")
    finally:
        writer.close()
    log(f"converted {len(plan)} tensors of a {hf_arch} checkpoint to {out_type} GGUF")
    return ConvertResult(
        path=dest,
        architecture=arch,
        tensor_count=len(plan),
        vocab_size=n_tokens,
        tokenizer_model=tok_model,
        tokenizer_pre=pre,
    )
