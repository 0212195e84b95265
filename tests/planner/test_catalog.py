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


def _dated(date: str) -> bool:
    import re

    return bool(re.search(r"\b(19|20)\d\d\b", date))


def test_every_accelerator_has_a_dated_sourced_price() -> None:
    for gpu in load_gpus():
        offers = [(p.date, p.source) for p in gpu.prices]
        if gpu.purchase is not None:
            offers.append((gpu.purchase.date, gpu.purchase.source))
        assert offers, f"{gpu.id}: no rental or purchase price"
        for date, source in offers:
            assert _dated(date), (gpu.id, date)
            assert source.startswith("https://"), (gpu.id, source)


# A representative profile, not a product: it has a rental price, no purchase one.
NOT_A_PRODUCT = {"cpu-generic-ddr5"}


def test_every_device_that_is_sold_can_be_owned_with_power_and_depreciation() -> None:
    for gpu in load_gpus():
        if gpu.id in NOT_A_PRODUCT:
            assert gpu.prices and gpu.purchase is None
            continue
        if gpu.cloud_only:
            assert gpu.prices, gpu.id
            continue
        if gpu.kind in ("apple", "cpu") or gpu.purchase is not None:
            assert gpu.purchase is not None, f"{gpu.id}: no purchase price"
            assert gpu.purchase.usd > 0 and gpu.purchase.depreciation_months > 0
    owned = [g for g in load_gpus() if g.purchase is not None]
    # power: every owned discrete GPU and CPU server says what it draws
    assert all(g.tdp_w for g in owned if g.kind != "apple"), [
        g.id for g in owned if not g.tdp_w
    ]
    assert len(owned) >= 17


def test_every_accelerator_has_dense_16_bit_throughput() -> None:
    for gpu in load_gpus():
        if gpu.kind == "cpu" and "avx512" not in gpu.cpu_features:
            continue  # AVX2 has no 16-bit arithmetic: llama.cpp multiplies in fp32
        assert gpu.tflops_for("fp16") or gpu.tflops_for("bf16"), gpu.id
    # the RTX 5090 and Apple chips no longer fall back to fp32
    assert get_gpu("rtx-5090").tflops_for("fp16") == 209.6
    for apple in ("apple-m2-ultra", "apple-m3-max", "apple-m4-max"):
        g = get_gpu(apple)
        assert g.tflops_for("fp16") == g.tflops_for("fp32")


def test_fp8_is_native_only_on_hopper_ada_blackwell_and_mi300x() -> None:
    native = {g.id for g in load_gpus() if g.tflops_for("fp8")}
    assert {"h100-sxm", "h200", "b200", "l40s", "l4", "rtx-4090", "mi300x"} <= native
    assert not native & {"a100-80gb", "t4", "v100-32gb", "rtx-3090", "mi250"}


def test_every_model_has_a_source_and_a_date() -> None:
    for m in load_models():
        assert m.source.startswith("https://huggingface.co/"), m.id
        assert _dated(m.date), m.id


def test_the_new_model_families_are_in_the_catalog() -> None:
    ids = {m.id for m in load_models()}
    assert {"llama-4-scout", "llama-4-maverick", "gpt-oss-20b", "gpt-oss-120b"} <= ids
    assert {f"gemma-3-{s}" for s in ("1b", "4b", "12b", "27b")} <= ids
    assert {f"qwen3-{s}" for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b")} <= ids


def test_qwen3_0_6b_has_its_published_parameter_count() -> None:
    # keras-hub's qwen3_0.6b_en preset: 596,049,920 parameters
    assert get_model("qwen3-0.6b").to_dict()["parameters"] == 596_049_920


def test_gpt_oss_20b_mxfp4_projection_is_within_half_a_percent_of_ggml_orgs_file() -> (
    None
):
    row = next(r for r in load_published_sizes() if r.model_id == "gpt-oss-20b")
    ours = artifact_bytes(get_model("gpt-oss-20b").spec, row.format)
    # ggml-org/gpt-oss-20b-GGUF: 12.1 GB (published to 0.1 GB); we project
    # 12,103,826,976 bytes: +0.03% against 12.10 GB
    error = ours / row.bytes - 1
    assert abs(error) < 0.005, error
    assert row.format == "gguf-MXFP4_MOE"


def test_gpt_oss_120b_mxfp4_tensor_data_matches_llama_benchs_size() -> None:
    from planner.engine.gguf_rules import gguf_tensor_data_bytes

    row = next(r for r in load_published_sizes() if r.model_id == "gpt-oss-120b")
    ours = gguf_tensor_data_bytes(get_model("gpt-oss-120b").spec, "MXFP4_MOE")
    # llama-bench on ggml-org's three shards: 59.02 GiB (to 0.01 GiB, +-0.0085%);
    # we project 63,374,323,968 bytes = 59.0219 GiB.
    assert abs(ours - row.bytes) <= 0.005 * 2**30, ours - row.bytes
