"""The catalog: loaders, lookups with close matches, GPU validation, published sizes."""

from __future__ import annotations

from typing import Any

import pytest

from planner.engine import (
    CatalogError,
    artifact_bytes,
    get_gpu,
    get_model,
    gpu_spec_from_dict,
    load_api_prices,
    load_gpus,
    load_models,
    load_published_sizes,
)


def test_catalog_files_load_and_parse() -> None:
    models = load_models()
    assert models and all(m.spec.num_layers > 0 for m in models)
    gpus = load_gpus()
    assert gpus and all(g.memory_bytes > 0 for g in gpus)
    assert {g.kind for g in gpus} <= {"gpu", "apple", "cpu"}
    assert load_api_prices()
    assert load_published_sizes()


def test_ids_are_unique_and_url_safe() -> None:
    for items in (load_models(), load_gpus(), load_api_prices()):
        ids = [i.id for i in items]
        assert len(ids) == len(set(ids))
        assert all(
            i == i.lower() and all(c.isalnum() or c in "._-" for c in i) for i in ids
        )


def test_unknown_ids_suggest_close_matches() -> None:
    some_model = load_models()[0].id
    with pytest.raises(CatalogError, match="did you mean"):
        get_model(some_model + "x")
    some_gpu = load_gpus()[0].id
    assert get_gpu(some_gpu).id == some_gpu
    with pytest.raises(CatalogError, match="unknown GPU"):
        get_gpu("warp-drive-9000")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"memory_bytes": 0}, "memory_bytes"),
        ({"memory_bytes": "lots"}, "memory_bytes"),
        ({"memory_bandwidth_bytes_per_s": -5}, "memory_bandwidth_bytes_per_s"),
        ({"tflops": {"int8": 100}}, "tflops"),
        ({"tflops": {"fp16": -1}}, "fp16"),
        ({"kind": "tpu"}, "kind"),
        ({"prices": [{"provider": "x", "usd_per_hour": -1}]}, "usd_per_hour"),
    ],
)
def test_a_user_gpu_is_validated_field_by_field(
    change: dict[str, Any], field: str
) -> None:
    data: dict[str, Any] = {
        "memory_bytes": 24e9,
        "memory_bandwidth_bytes_per_s": 1e12,
        "tflops": {"fp16": 100},
    }
    assert gpu_spec_from_dict(data).memory_bytes == 24_000_000_000
    data.update(change)
    with pytest.raises(CatalogError, match=field):
        gpu_spec_from_dict(data)


# Published files built differently from today's llama.cpp / convert_hf_to_gguf:
# Qwen's own GGUFs store a separate output.weight for tied models, and this Phi-3
# file predates the rule that treats attn_qkv like attn_v.
KNOWN_DIFFERENT = {
    "qwen2.5-1.5b-instruct-q8_0.gguf": "untied output.weight added by Qwen's converter",
    "qwen2.5-3b-instruct-q5_k_m.gguf": "untied output.weight added by Qwen's converter",
    "Phi-3.1-mini-4k-instruct-Q5_K_M.gguf": "older llama.cpp attn_qkv rule",
}


def test_projected_sizes_match_published_files() -> None:
    models = {m.id: m for m in load_models()}
    checked = 0
    for row in load_published_sizes():
        if row.model_id not in models or row.file in KNOWN_DIFFERENT:
            continue
        ours = artifact_bytes(models[row.model_id].spec, row.format)
        assert ours == pytest.approx(row.bytes, rel=0.01), (
            row.model_id,
            row.format,
            row.file,
        )
        checked += 1
    assert checked >= 30


def test_catalog_entries_serialise_to_json() -> None:
    import json

    model = load_models()[0].to_dict()
    assert model["parameters"] >= model["active_parameters"] > 0
    for items in (
        load_models(),
        load_gpus(),
        load_api_prices(),
        load_published_sizes(),
    ):
        json.dumps([i.to_dict() for i in items])
