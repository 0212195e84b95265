"""GGUF → Hugging Face: turn a GGUF file into a safetensors directory.

The other direction, Hugging Face → GGUF, is ``gguf/convert.py``.

The weight-only methods (RTN, AWQ, GPTQ) work on Hugging Face checkpoints, while
the sample model ships as a GGUF. transformers can read GGUF (it dequantizes every
tensor to float32); we save the result as a plain safetensors directory that
``AutoModelForCausalLM.from_pretrained`` (never with ``trust_remote_code``), autoawq
and vLLM load.

Dtype: float16. The sample's tensors are Q4_1/Q8_0 blocks, i.e. an fp16 scale and
offset times small integers; their float32 products need up to ~15 significant
bits, so float16 rounds them by at most 2⁻¹¹ relative. Measured on the sample,
the float16 directory has a KL divergence of ~1e-5 nats/token from the float32 one
(vs ~0.1 for 4-bit quantization): half the bytes, no visible quality change, and
the dtype AWQ/GPTQ checkpoints and their kernels use. bfloat16 would round 8x
coarser (2⁻⁸). ``dtype="float32"`` keeps the dequantized values bit-exact.

Output is deterministic: converting the same GGUF twice with the same library
versions gives byte-identical files, so a converted directory can be cached by the
GGUF's sha256 (see :func:`convert_cached`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from quantjobs.backends.base import BackendError, LogFn, ProgressFn, sha256_file

SaveDtype = Literal["float16", "bfloat16", "float32"]
_GGUF_MAGIC = b"GGUF"
# Files the converted directory must hold for the other backends to use it.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def gguf_to_hf(
    gguf_path: Path,
    out_dir: Path,
    progress: ProgressFn,
    log: LogFn,
    dtype: SaveDtype = "float16",
) -> Path:
    """Convert ``gguf_path`` into the new directory ``out_dir``; returns ``out_dir``.

    Writes into a temporary sibling directory and renames it into place, so a
    crash never leaves a half-written ``out_dir`` behind.
    """
    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    _check_gguf(gguf_path)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BackendError(f"Refusing to overwrite the non-empty directory {out_dir}.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    import torch
    from transformers import (  # type: ignore[attr-defined]
        AutoModelForCausalLM,
        AutoTokenizer,
    )

    torch_dtype = {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float32": torch.float32,
    }[dtype]
    folder, name = str(gguf_path.parent), gguf_path.name
    progress(0.0, "convert: read gguf")
    log(f"Reading {name} ({gguf_path.stat().st_size} bytes) with transformers")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, torch_dtype=torch.float32, trust_remote_code=False
        )
        progress(0.6, "convert: tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(
            folder, gguf_file=name, trust_remote_code=False
        )
    except ValueError as exc:  # transformers' word for unsupported architectures
        raise BackendError(
            f"transformers cannot convert {name}: {exc} Use a GGUF of a supported "
            "architecture (llama, mistral, qwen2, ...) or a Hugging Face source."
        ) from exc
    _apply_gguf_tokenizer_metadata(tokenizer, gguf_path, log)
    model = model.to(torch_dtype)
    _check_finite(model, dtype)

    progress(0.8, "convert: save")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        # One shard: the models this path is meant for are small, and a single
        # file keeps the directory layout (and its hashes) trivial.
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="100GB")
        tokenizer.save_pretrained(tmp)
        # transformers "saves the vocabulary" of a GGUF tokenizer by copying the
        # whole GGUF as tokenizer.model, which is no SentencePiece model (a slow
        # tokenizer would fail on it) and doubles the bytes: tokenizer.json is
        # the tokenizer.
        vocab_copy = tmp / "tokenizer.model"
        if vocab_copy.is_file() and vocab_copy.read_bytes()[:4] == _GGUF_MAGIC:
            vocab_copy.unlink()
        _normalise_config(tmp / "config.json")
        _drop_void_byte_fallback(tmp / "tokenizer.json")
        for required in REQUIRED_FILES:
            if not (tmp / required).is_file():
                raise BackendError(
                    f"Conversion of {name} produced no {required}; this GGUF cannot "
                    "be used as a Hugging Face source."
                )
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    log(f"Saved a {dtype} Hugging Face directory of {total} bytes at {out_dir}")
    progress(1.0, "convert: done")
    return out_dir


def convert_cached(
    gguf_path: Path,
    cache_root: Path,
    progress: ProgressFn,
    log: LogFn,
    dtype: SaveDtype = "float16",
) -> Path:
    """Convert once per (GGUF content, dtype, transformers version); reuse after."""
    import transformers

    digest = sha256_file(Path(gguf_path))
    # -v2: tokenizer.json written without the void byte_fallback flag.
    key = f"{digest[:16]}-{dtype}-tf{transformers.__version__}-v2"
    target = Path(cache_root) / key
    if all((target / f).is_file() for f in REQUIRED_FILES):
        log(f"Using the converted model cached at {target}")
        progress(1.0, "convert: cached")
        return target
    try:
        # gguf_to_hf builds in a private folder and renames it into place.
        return gguf_to_hf(Path(gguf_path), target, progress, log, dtype=dtype)
    except (BackendError, OSError):
        # Another process may have won the race to the same cache key.
        if all((target / f).is_file() for f in REQUIRED_FILES):
            return target
        raise


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise BackendError(f"GGUF file {path} does not exist.")
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise BackendError(f"{path.name} is not a GGUF file (bad magic bytes).")


def _apply_gguf_tokenizer_metadata(tokenizer: object, path: Path, log: LogFn) -> None:
    """Make the tokenizer follow the GGUF's own special-token metadata.

    transformers 4.51's GGUF tokenizer conversion turns ``add_bos_token`` on and
    takes the wrong end-of-sequence token for the sample (``<|im_start|>``, while
    the GGUF says ``<|im_end|>`` and no BOS). llama.cpp follows the metadata, so
    we do too: the converted model then sees the same tokens as the GGUF does.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field(key: str) -> object:
        found = reader.fields.get(key)
        if found is None or not found.data:
            return None
        return found.parts[found.data[0]][0].item()

    tokens = tokenizer.convert_ids_to_tokens  # type: ignore[attr-defined]
    for attr, key in (
        ("bos_token", "bos_token_id"),
        ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"),
        ("pad_token", "padding_token_id"),
    ):
        token_id = field(f"tokenizer.ggml.{key}")
        if isinstance(token_id, int):
            setattr(tokenizer, attr, tokens(token_id))
    for attr in ("add_bos_token", "add_eos_token"):
        flag = field(f"tokenizer.ggml.{attr}")
        if isinstance(flag, bool) and hasattr(tokenizer, attr):
            # The fast Llama tokenizer rebuilds its post-processor on assignment.
            setattr(tokenizer, attr, flag)
    log(
        "Tokenizer special tokens from the GGUF: "
        f"bos={getattr(tokenizer, 'bos_token', None)!r} "
        f"eos={getattr(tokenizer, 'eos_token', None)!r} "
        f"add_bos={getattr(tokenizer, 'add_bos_token', None)}"
    )


def _check_finite(model: object, dtype: str) -> None:
    import torch

    assert isinstance(model, torch.nn.Module)
    for pname, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise BackendError(
                f"Tensor {pname} overflows {dtype}; convert with dtype='float32'."
            )


def _drop_void_byte_fallback(path: Path) -> None:
    """Write ``byte_fallback: false`` where the vocabulary has no byte tokens.

    transformers' GGUF export of a byte-level BPE tokenizer sets the flag
    although no ``<0xNN>`` token exists, so it changes nothing in transformers;
    llama.cpp's converter reads it as a SentencePiece-style vocabulary, which
    llama.cpp then aborts on when it loads the converted file.
    """
    from quantjobs.backends.gguf.convert import byte_fallback_is_void

    if not path.is_file():
        return
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(tokenizer, dict) and byte_fallback_is_void(tokenizer):
        tokenizer["model"]["byte_fallback"] = False
        path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")


def _normalise_config(path: Path) -> None:
    """Drop fields that name the converting machine's paths, so output is portable."""
    config = json.loads(path.read_text())
    config.pop("_name_or_path", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
