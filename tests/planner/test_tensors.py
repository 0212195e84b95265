"""tensor_inventory and parameter_breakdown: GGUF names, shapes, parameter counts."""

from __future__ import annotations

from planner.engine import ModelSpec, parameter_breakdown, tensor_inventory


def test_llama_3_1_8b_has_its_published_parameter_count(llama3_8b: ModelSpec) -> None:
    p = parameter_breakdown(llama3_8b)
    assert p.total == 8_030_261_312  # 8.03B incl. the 64-entry rope_freqs tensor
    assert p.embedding == p.lm_head == 128256 * 4096
    assert p.active_per_token == p.total


def test_smollm2_has_135m_parameters_and_no_output_tensor(smollm2: ModelSpec) -> None:
    tensors = tensor_inventory(smollm2)
    assert len(tensors) == 272
    assert parameter_breakdown(smollm2).total == 134_515_008
    assert "output.weight" not in {t.name for t in tensors}


def test_gguf_names_and_shapes_follow_llama_cpp(llama3_8b: ModelSpec) -> None:
    by_name = {t.name: t for t in tensor_inventory(llama3_8b)}
    assert by_name["token_embd.weight"].shape == (4096, 128256)
    assert by_name["blk.0.attn_k.weight"].shape == (4096, 1024)
    assert by_name["blk.31.ffn_down.weight"].shape == (14336, 4096)
    assert by_name["output_norm.weight"].shape == (4096,)
    assert by_name["rope_freqs.weight"].shape == (64,)


def test_mixtral_has_8_experts_and_about_13b_active(mixtral: ModelSpec) -> None:
    by_name = {t.name: t for t in tensor_inventory(mixtral)}
    assert by_name["blk.0.ffn_gate_exps.weight"].shape == (4096, 14336, 8)
    assert by_name["blk.0.ffn_down_exps.weight"].shape == (14336, 4096, 8)
    assert by_name["blk.0.ffn_gate_inp.weight"].shape == (4096, 8)
    p = parameter_breakdown(mixtral)
    assert round(p.total / 1e9, 1) == 46.7
    assert round(p.active_per_token / 1e9, 1) == 12.9
    assert p.router == 32 * 4096 * 8


def test_deepseek_v3_is_671b_with_37b_active(deepseek_v3: ModelSpec) -> None:
    p = parameter_breakdown(deepseek_v3)
    assert round(p.total / 1e9) == 671
    assert round(p.active_per_token / 1e9) == 38  # 37B plus embeddings, as counted here
    assert p.shared_experts > 0


def test_mla_tensors_are_named_as_in_gguf(deepseek_v3: ModelSpec) -> None:
    by_name = {t.name: t for t in tensor_inventory(deepseek_v3)}
    assert by_name["blk.0.attn_q_a.weight"].shape == (7168, 1536)
    assert by_name["blk.0.attn_q_b.weight"].shape == (1536, 128 * 192)
    assert by_name["blk.0.attn_kv_a_mqa.weight"].shape == (7168, 512 + 64)
    assert by_name["blk.0.attn_k_b.weight"].shape == (128, 512, 128)
    assert by_name["blk.0.attn_v_b.weight"].shape == (512, 128, 128)
    assert "blk.2.ffn_gate.weight" in by_name  # first_k_dense_replace = 3
    assert "blk.3.ffn_gate_exps.weight" in by_name
    assert "blk.3.exp_probs_b.bias" in by_name
    assert by_name["blk.3.ffn_gate_shexp.weight"].shape == (7168, 2048)


def test_deepseek_without_q_lora_has_a_plain_attn_q(
    specs: dict[str, ModelSpec],
) -> None:
    names = {t.name for t in tensor_inventory(specs["deepseek-v2-lite"])}
    assert "blk.0.attn_q.weight" in names and "blk.0.attn_q_a.weight" not in names


def test_qwen2_has_qkv_biases(specs: dict[str, ModelSpec]) -> None:
    names = {t.name for t in tensor_inventory(specs["qwen2-7b"])}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= names
    assert "blk.0.attn_output.bias" not in names


def test_qwen3_and_gemma_extra_norms(specs: dict[str, ModelSpec]) -> None:
    qwen3 = {t.name for t in tensor_inventory(specs["qwen3-30b-a3b"])}
    assert "blk.0.attn_q_norm.weight" in qwen3
    gemma = {t.name for t in tensor_inventory(specs["gemma-2-9b"])}
    assert {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"} <= gemma


def test_phi3_has_fused_tensors(specs: dict[str, ModelSpec]) -> None:
    by_name = {t.name: t for t in tensor_inventory(specs["phi-3-mini"])}
    assert by_name["blk.0.attn_qkv.weight"].shape == (3072, 3 * 3072)
    assert by_name["blk.0.ffn_up.weight"].shape == (3072, 2 * 8192)
    assert "blk.0.ffn_gate.weight" not in by_name


def test_roles_add_up_to_the_total(specs: dict[str, ModelSpec]) -> None:
    for spec in specs.values():
        p = parameter_breakdown(spec)
        parts = (
            p.embedding
            + p.lm_head
            + p.attention
            + p.mlp
            + p.experts
            + p.shared_experts
            + p.router
            + p.norms
            + p.other
        )
        assert parts == p.total == sum(t.n_elements for t in tensor_inventory(spec))
        assert 0 < p.matmul_per_token <= p.total
