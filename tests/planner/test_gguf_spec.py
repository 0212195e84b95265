"""``model_spec_from_gguf``: the same ModelSpec from a GGUF header as from config.json.

For every catalog model (and Qwen3 and Gemma 3, which the catalog lacks) the
tensor table llama.cpp's converter writes is laid out from the config's spec,
with the metadata keys the converter writes; reading that back must give the
same spec. Real files of other architectures are read in
tests/quantjobs/test_modelspec.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from planner.engine import (
    GgufTensor,
    ModelSpec,
    SpecError,
    artifact_bytes,
    catalog,
    model_spec_from_config,
    model_spec_from_dict,
    model_spec_from_gguf,
    model_spec_to_dict,
    tensor_inventory,
    weights_bytes,
)
from planner.engine.gguf_rules import gguf_tensor_sizes

QWEN3_8B: dict[str, Any] = {
    "model_type": "qwen3",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": False,
}
GEMMA3_4B: dict[str, Any] = {
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 1024,
        "vocab_size": 262208,
    },
}
# Not compared: names, notes, how a family is named in config.json (mistral and
# mixtral are llama.cpp's "llama"), and what only a file has (its own tensors).
_IGNORED = {
    "model_id",
    "name",
    "notes",
    "model_type",
    "stored_format",
    "stored_tensors",
    "stored_file_bytes",
    "stored_metadata_bytes",
}


def _header_like_converter(
    spec: ModelSpec, file_type: int = 1
) -> tuple[dict[str, Any], list[GgufTensor]]:
    """Metadata and tensor table as convert_hf_to_gguf writes them for ``spec``."""
    a = spec.gguf_arch
    meta: dict[str, Any] = {
        "general.architecture": a,
        "general.name": spec.name,
        "general.file_type": file_type,
        f"{a}.block_count": spec.num_layers,
        f"{a}.context_length": spec.max_position_embeddings,
        f"{a}.embedding_length": spec.hidden_size,
        f"{a}.feed_forward_length": spec.intermediate_size,
        f"{a}.attention.head_count": spec.num_attention_heads,
        f"{a}.attention.head_count_kv": 1 if spec.is_mla else spec.num_kv_heads,
    }
    if not spec.is_mla:
        meta[f"{a}.attention.key_length"] = spec.head_dim
        meta[f"{a}.attention.value_length"] = spec.v_head_dim
    if spec.num_experts:
        meta[f"{a}.expert_count"] = spec.num_experts
        meta[f"{a}.expert_used_count"] = spec.num_experts_per_tok
    if spec.num_shared_experts:
        meta[f"{a}.expert_shared_count"] = spec.num_shared_experts
    if spec.sliding_window:
        meta[f"{a}.attention.sliding_window"] = spec.sliding_window
    tensors = [
        GgufTensor(t.name, "F16" if t.is_matrix else "F32", t.shape)
        for t in tensor_inventory(spec)
    ]
    return meta, tensors


def _comparable(spec: ModelSpec) -> dict[str, Any]:
    return {
        f.name: getattr(spec, f.name)
        for f in dataclasses.fields(spec)
        if f.init and f.name not in _IGNORED
    }


def _every_family() -> list[tuple[str, ModelSpec]]:
    specs = [(m.id, m.spec) for m in catalog.load_models()]
    specs.append(("qwen3-8b", model_spec_from_config(QWEN3_8B, model_id="qwen3-8b")))
    specs.append(("gemma-3-4b", model_spec_from_config(GEMMA3_4B, model_id="g3")))
    return specs


@pytest.mark.parametrize(
    ("model_id", "spec"), _every_family(), ids=lambda v: str(v)[:30]
)
def test_it_reads_the_same_spec_from_a_gguf_header_as_from_config(
    model_id: str, spec: ModelSpec
) -> None:
    meta, tensors = _header_like_converter(spec)
    from_gguf = model_spec_from_gguf(meta, tensors, model_id=model_id)
    assert _comparable(from_gguf) == _comparable(spec)
    assert from_gguf.notes == ()  # every tensor of the file is one the planner models
    assert from_gguf.stored_format == "gguf-F16"


def test_every_catalog_architecture_is_covered() -> None:
    archs = {spec.gguf_arch for _, spec in _every_family()}
    assert archs >= {
        "llama",
        "qwen2",
        "qwen2moe",
        "qwen3",
        "qwen3moe",
        "gemma",
        "gemma2",
        "gemma3",
        "phi3",
        "deepseek2",
    }
    moe = {s.model_type for _, s in _every_family() if s.num_experts}
    assert {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"} <= moe


def test_the_files_own_format_is_sized_from_its_stored_tensors() -> None:
    spec = catalog.get_model("qwen2.5-7b").spec
    meta, _ = _header_like_converter(spec, file_type=15)  # MOSTLY_Q4_K_M
    # A file quantized by someone else: every matrix Q4_K, a mixture our rules
    # would not choose, so only the stored tensors give its true size.
    tensors = [
        GgufTensor(t.name, "Q4_K" if t.is_matrix else "F32", t.shape)
        for t in tensor_inventory(spec)
    ]
    from_gguf = model_spec_from_gguf(meta, tensors, file_bytes=4_400_000_000)
    assert from_gguf.stored_format == "gguf-Q4_K_M"
    stored_data = sum(n for _, _, n in from_gguf.stored_tensors)
    assert weights_bytes(from_gguf, "gguf-Q4_K_M") == stored_data
    assert artifact_bytes(from_gguf, "gguf-Q4_K_M") == 4_400_000_000
    by_rules = sum(n for _, _, n in gguf_tensor_sizes(spec, "Q4_K_M"))
    assert stored_data != by_rules
    # Every other format: as if converted from it, by the rules.
    assert weights_bytes(from_gguf, "gguf-Q8_0") == weights_bytes(spec, "gguf-Q8_0")
    assert weights_bytes(from_gguf, "awq-4bit-g128") == weights_bytes(
        spec, "awq-4bit-g128"
    )


def test_tensors_the_planner_does_not_model_are_said_and_kept_in_the_own_format() -> (
    None
):
    spec = catalog.get_model("qwen2.5-7b").spec
    meta, tensors = _header_like_converter(spec)
    tensors.append(GgufTensor("mm.vision_proj.weight", "F16", (1024, 3584)))
    from_gguf = model_spec_from_gguf(meta, tensors)
    assert any("mm.vision_proj.weight" in n for n in from_gguf.notes)
    assert weights_bytes(from_gguf, "gguf-F16") == weights_bytes(spec, "gguf-F16") + (
        1024 * 3584 * 2
    )


def test_the_spec_survives_a_json_round_trip() -> None:
    spec = catalog.get_model("deepseek-v3").spec
    meta, tensors = _header_like_converter(spec)
    from_gguf = model_spec_from_gguf(meta, tensors, file_bytes=123)
    import json

    again = model_spec_from_dict(json.loads(json.dumps(model_spec_to_dict(from_gguf))))
    assert again == from_gguf
    assert artifact_bytes(again, "gguf-F16") == 123


@pytest.fixture
def qwen2_header() -> tuple[dict[str, Any], list[GgufTensor]]:
    return _header_like_converter(catalog.get_model("qwen2.5-7b").spec)


def test_an_unknown_architecture_is_named(qwen2_header: Any) -> None:
    meta, tensors = qwen2_header
    meta = {**meta, "general.architecture": "rwkv7"}
    with pytest.raises(SpecError, match="general.architecture: 'rwkv7' is not"):
        model_spec_from_gguf(meta, tensors)


@pytest.mark.parametrize(
    "key", ["qwen2.block_count", "qwen2.attention.head_count", "general.architecture"]
)
def test_a_missing_key_is_named(qwen2_header: Any, key: str) -> None:
    meta, tensors = qwen2_header
    meta = {k: v for k, v in meta.items() if k != key}
    with pytest.raises(SpecError, match=f"^{key}: missing"):
        model_spec_from_gguf(meta, tensors)


def test_a_missing_tensor_is_named(qwen2_header: Any) -> None:
    meta, tensors = qwen2_header
    tensors = [t for t in tensors if t.name != "blk.27.attn_norm.weight"]
    with pytest.raises(SpecError, match="tensor blk.27.attn_norm.weight: missing"):
        model_spec_from_gguf(meta, tensors)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("qwen2.attention.head_count", "many", "must be a whole number"),
        ("qwen2.attention.head_count_kv", 5, "must divide"),
        ("qwen2.embedding_length", 1234, "disagrees with token_embd.weight"),
        ("qwen2.block_count", 10**9, "out of range"),
    ],
)
def test_a_bad_value_is_named(
    qwen2_header: Any, key: str, value: object, message: str
) -> None:
    meta, tensors = qwen2_header
    with pytest.raises(SpecError, match=message) as caught:
        model_spec_from_gguf({**meta, key: value}, tensors)
    assert key in str(caught.value)


def test_a_bad_tensor_type_or_shape_is_named(qwen2_header: Any) -> None:
    meta, tensors = qwen2_header
    odd = [GgufTensor("token_embd.weight", "Q4_K", (100, 152064)), *tensors[1:]]
    with pytest.raises(SpecError, match="tensor token_embd.weight: 100 elements"):
        model_spec_from_gguf(meta, odd)
    odd = [GgufTensor("token_embd.weight", "Q9_Z", (3584, 152064)), *tensors[1:]]
    with pytest.raises(SpecError, match="ggml type 'Q9_Z' is unknown"):
        model_spec_from_gguf(meta, odd)
