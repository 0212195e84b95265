"""model_spec_from_config: families, validation, and that nothing but SpecError escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.engine import ModelSpec, SpecError, model_spec_from_config


def test_it_reads_a_llama_config(llama3_8b: ModelSpec) -> None:
    assert llama3_8b.gguf_arch == "llama"
    assert (llama3_8b.hidden_size, llama3_8b.num_layers) == (4096, 32)
    assert llama3_8b.head_dim == 128
    assert llama3_8b.n_gqa == 4
    assert llama3_8b.rope_freqs_length == 64
    assert not llama3_8b.tie_word_embeddings
    assert not llama3_8b.is_moe


def test_it_uses_an_explicit_head_dim(specs: dict[str, ModelSpec]) -> None:
    assert specs["smollm2-135m"].head_dim == 64
    assert specs["gemma-2-9b"].head_dim == 256  # 16 heads * 256 != hidden 3584
    assert specs["qwen3-30b-a3b"].head_dim == 128


def test_it_knows_tied_embeddings(specs: dict[str, ModelSpec]) -> None:
    assert specs["smollm2-135m"].tie_word_embeddings
    assert specs["gemma-2-9b"].tie_word_embeddings  # Gemma ties by default
    assert not specs["qwen2-7b"].tie_word_embeddings


def test_qwen2_gets_qkv_bias(specs: dict[str, ModelSpec]) -> None:
    assert specs["qwen2-7b"].qkv_bias
    assert not specs["qwen2-7b"].attention_output_bias
    assert not specs["llama-3.1-8b"].qkv_bias


def test_mistral_applies_its_window_to_every_layer(specs: dict[str, ModelSpec]) -> None:
    m = specs["mistral-7b-v0.1"]
    assert m.sliding_window == 4096
    assert all(m.sliding_layers)


def test_gemma2_alternates_sliding_and_global_layers(
    specs: dict[str, ModelSpec],
) -> None:
    g = specs["gemma-2-9b"]
    assert g.sliding_layers[:4] == (True, False, True, False)
    assert g.num_sliding_layers == 21
    assert g.sandwich_norms


def test_qwen2_window_is_off_unless_use_sliding_window(
    specs: dict[str, ModelSpec],
) -> None:
    assert specs["qwen2-7b"].num_sliding_layers == 0


def test_gemma3_reads_the_nested_text_config(specs: dict[str, ModelSpec]) -> None:
    g = specs["gemma-3-4b"]
    assert g.model_type == "gemma3_text"
    assert (g.hidden_size, g.num_layers, g.vocab_size) == (2560, 34, 262_208)
    assert g.qk_norm
    # five sliding layers, then a global one
    assert g.sliding_layers[:6] == (True, True, True, True, True, False)
    assert any("defaults" in n for n in g.notes)


def test_layer_types_list_decides_sliding_layers() -> None:
    cfg = {
        "model_type": "qwen3",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 100,
        "sliding_window": 16,
        "layer_types": ["full_attention", "sliding_attention"],
    }
    assert model_spec_from_config(cfg).sliding_layers == (False, True)


def test_mixtral_routes_every_layer(specs: dict[str, ModelSpec]) -> None:
    m = specs["mixtral-8x7b"]
    assert m.is_moe and m.num_experts == 8 and m.num_experts_per_tok == 2
    assert m.moe_intermediate_size == 14336
    assert all(m.moe_layers)


def test_deepseek_v2_lite_has_mla_without_q_lora(specs: dict[str, ModelSpec]) -> None:
    d = specs["deepseek-v2-lite"]
    assert d.is_mla and d.q_lora_rank == 0 and d.kv_lora_rank == 512
    assert d.moe_layers[0] is False and all(d.moe_layers[1:])
    assert d.shared_expert_intermediate_size == 2 * 1408
    assert not d.router_bias


def test_deepseek_v3_keeps_three_dense_layers(deepseek_v3: ModelSpec) -> None:
    assert deepseek_v3.num_moe_layers == 58
    assert deepseek_v3.q_lora_rank == 1536
    assert deepseek_v3.router_bias  # noaux_tc routing has a score-correction bias


def test_a_deepseek_v3_config_without_topk_method_still_has_the_router_bias() -> None:
    # transformers 4.51 writes V3 configs without topk_method; its V3 always has
    # e_score_correction_bias, which llama.cpp stores as exp_probs_b.
    from tests.planner.conftest import DEEPSEEK_V3

    cfg = {k: v for k, v in DEEPSEEK_V3.items() if k != "topk_method"}
    assert model_spec_from_config(cfg).router_bias
    v2 = {**cfg, "model_type": "deepseek_v2"}
    assert not model_spec_from_config(v2).router_bias  # V2 routes greedily


def test_qwen2_moe_has_a_gated_shared_expert(specs: dict[str, ModelSpec]) -> None:
    q = specs["qwen1.5-moe"]
    assert q.shared_expert_gate and q.shared_expert_intermediate_size == 5632


def test_phi3_fuses_qkv_and_gate_up(specs: dict[str, ModelSpec]) -> None:
    p = specs["phi-3-mini"]
    assert p.fused_qkv and p.fused_gate_up and p.gguf_arch == "phi3"


def test_an_unknown_model_type_is_sized_as_llama_with_a_note(
    llama3_8b: ModelSpec,
) -> None:
    cfg = {
        "model_type": "shiny_new",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 100,
    }
    spec = model_spec_from_config(cfg)
    assert spec.gguf_arch == "llama"
    assert "shiny_new" in spec.notes[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": None}, "hidden_size"),
        ({"hidden_size": "4096"}, "hidden_size"),
        ({"hidden_size": 4096.5}, "hidden_size"),
        ({"hidden_size": True}, "hidden_size"),
        ({"hidden_size": -1}, "hidden_size"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 2_000_000}, "hidden_size"),
        ({"num_hidden_layers": 20_000}, "num_hidden_layers"),
        ({"vocab_size": 20_000_000}, "vocab_size"),
        ({"num_attention_heads": 7}, "num_attention_heads"),
        ({"num_key_value_heads": 5}, "num_key_value_heads"),
        ({"intermediate_size": None}, "intermediate_size"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
        ({"model_type": 3}, "model_type"),
        ({"text_config": [1, 2]}, "text_config"),
    ],
)
def test_it_rejects_bad_fields_naming_the_field(
    configs: dict[str, dict[str, Any]], change: dict[str, Any], field: str
) -> None:
    cfg = dict(configs["llama-3.1-8b"])
    cfg.update(change)
    if cfg.get("hidden_size") is None:
        del cfg["hidden_size"]
    if cfg.get("intermediate_size") is None:
        cfg.pop("intermediate_size")
    with pytest.raises(SpecError) as err:
        model_spec_from_config(cfg)
    assert field in str(err.value)


def test_it_rejects_something_that_is_not_an_object() -> None:
    with pytest.raises(SpecError, match="JSON object"):
        model_spec_from_config([1, 2, 3])  # type: ignore[arg-type]


def test_an_integral_float_is_accepted(configs: dict[str, dict[str, Any]]) -> None:
    cfg = dict(configs["llama-3.1-8b"], hidden_size=4096.0)
    assert model_spec_from_config(cfg).hidden_size == 4096


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = [
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "head_dim",
    "tie_word_embeddings",
    "sliding_window",
    "layer_types",
    "num_local_experts",
    "num_experts_per_tok",
    "n_routed_experts",
    "kv_lora_rank",
    "q_lora_rank",
    "moe_intermediate_size",
    "first_k_dense_replace",
    "mlp_only_layers",
    "text_config",
    "rope_scaling",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "decoder_sparse_step",
    "use_sliding_window",
    "max_window_layers",
]


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(
        [
            "llama-3.1-8b",
            "deepseek-v2-lite",
            "qwen1.5-moe",
            "gemma-3-4b",
            "phi-3-mini",
            "mixtral-8x7b",
        ]
    ),
    overrides=st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=4),
)
def test_any_json_value_gives_a_spec_or_a_spec_error(
    configs: dict[str, dict[str, Any]], base: str, overrides: dict[str, Any]
) -> None:
    cfg = dict(configs[base])
    cfg.update(overrides)
    try:
        spec = model_spec_from_config(cfg)
    except SpecError:
        return
    assert spec.num_layers > 0 and spec.hidden_size > 0


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_any_json_document_gives_a_spec_or_a_spec_error(value: Any) -> None:
    try:
        model_spec_from_config(value)
    except SpecError:
        pass


def test_configs_round_trip_through_json(configs: dict[str, dict[str, Any]]) -> None:
    for name, cfg in configs.items():
        spec = model_spec_from_config(json.loads(json.dumps(cfg)), model_id=name)
        assert spec.model_id == name
        assert hash(spec) == hash(model_spec_from_config(cfg, model_id=name))


def _catalog_config(model_id: str) -> dict[str, Any]:
    from planner.engine import get_model

    return dict(get_model(model_id).config)


def test_gpt_oss_reads_its_own_expert_naming_and_mxfp4_config() -> None:
    cfg = _catalog_config("gpt-oss-20b")
    assert cfg["quantization_config"]["quant_method"] == "mxfp4"
    g = model_spec_from_config(cfg, model_id="gpt-oss-20b")
    assert g.gguf_arch == "gpt-oss"
    assert (g.num_experts, g.num_experts_per_tok) == (32, 4)
    assert g.moe_intermediate_size == 2880 and all(g.moe_layers)
    assert g.attention_sinks and g.expert_biases
    assert g.qkv_bias and g.attention_output_bias
    # layer_types: even layers slide over 128 tokens, odd ones attend to all
    assert g.sliding_window == 128
    assert g.sliding_layers[:4] == (True, False, True, False)
    # "experts_per_token" alone (the original gpt-oss naming) is enough
    only = {k: v for k, v in cfg.items() if k != "num_experts_per_tok"}
    assert model_spec_from_config(only).num_experts_per_tok == 4


def test_gpt_oss_has_llama_cpps_459_tensors_and_openais_parameter_counts() -> None:
    from planner.engine.tensors import parameter_breakdown, tensor_inventory

    g = model_spec_from_config(_catalog_config("gpt-oss-20b"))
    names = {t.name for t in tensor_inventory(g)}
    # convert_hf_to_gguf writes gpt-oss-20b with n_tensors = 459
    assert len(tensor_inventory(g)) == 459
    assert {"blk.0.attn_sinks.weight", "blk.0.ffn_gate_inp.bias"} <= names
    assert "blk.0.ffn_down_exps.bias" in names
    p = parameter_breakdown(g)
    # OpenAI's model card: 20.91B total, 3.61B active (input embedding excluded)
    assert p.total == pytest.approx(20.91e9, rel=0.002)
    assert p.active_per_token - p.embedding == pytest.approx(3.61e9, rel=0.005)
    big = parameter_breakdown(model_spec_from_config(_catalog_config("gpt-oss-120b")))
    assert big.total == pytest.approx(116.83e9, rel=0.002)
    assert big.active_per_token - big.embedding == pytest.approx(5.13e9, rel=0.005)


def test_llama4_interleaves_moe_layers_and_reads_the_nested_text_config() -> None:
    scout = model_spec_from_config(_catalog_config("llama-4-scout"))
    maverick = model_spec_from_config(_catalog_config("llama-4-maverick"))
    assert scout.model_type == "llama4_text" and scout.gguf_arch == "llama4"
    assert scout.num_moe_layers == 48 and scout.num_experts == 16
    # Maverick: interleave_moe_layer_step 2 puts MoE on layers 1, 3, 5, ...
    assert maverick.num_moe_layers == 24
    assert maverick.moe_layers[:4] == (False, True, False, True)
    # experts and the shared expert are intermediate_size wide, dense layers _mlp
    assert maverick.moe_intermediate_size == 8192
    assert maverick.shared_expert_intermediate_size == 8192
    assert maverick.intermediate_size == 16384
    # chunked attention on 3 of every 4 layers, kept like a sliding window
    assert scout.sliding_window == 8192
    assert scout.sliding_layers[:4] == (True, True, True, False)


def test_llama4_parameter_counts_match_metas_17b_active() -> None:
    from planner.engine.tensors import parameter_breakdown

    scout = parameter_breakdown(
        model_spec_from_config(_catalog_config("llama-4-scout"))
    )
    maverick = parameter_breakdown(
        model_spec_from_config(_catalog_config("llama-4-maverick"))
    )
    # Meta: 17B active for both; 109B / 400B total with the vision encoder,
    # which the planner leaves out (text model only).
    assert scout.active_per_token == pytest.approx(17e9, rel=0.02)
    assert maverick.active_per_token == pytest.approx(17e9, rel=0.02)
    assert 105e9 < scout.total < 109e9
    assert 395e9 < maverick.total < 402e9


def test_llama4_explicit_moe_layers_must_be_layer_numbers() -> None:
    cfg = _catalog_config("llama-4-scout")
    cfg["text_config"] = {**cfg["text_config"], "moe_layers": [0, 99]}
    with pytest.raises(SpecError, match="moe_layers"):
        model_spec_from_config(cfg)
