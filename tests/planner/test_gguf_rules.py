"""llama.cpp's quantization mixture: per-tensor types, fallbacks, bits per weight."""

from __future__ import annotations

import pytest

from planner.engine import (
    ModelSpec,
    gguf_bits_per_weight,
    gguf_fallback_count,
    gguf_file_bytes,
    gguf_tensor_types,
    model_spec_from_config,
)

# tools/quantize/README.md of llama.cpp, meta-llama/Llama-3.1-8B. Its "bits/weight"
# is tensor data bits / parameters (no GGUF header): F16 is 16.0005 because norms
# and rope_freqs stay F32; we compute the same quantity.
LLAMA_31_8B_BPW = {
    "IQ1_S": 2.0042,
    "IQ1_M": 2.1460,
    "IQ2_XXS": 2.3824,
    "IQ2_XS": 2.5882,
    "IQ2_S": 2.7403,
    "IQ2_M": 2.9294,
    "IQ3_XXS": 3.2548,
    "IQ3_XS": 3.4977,
    "IQ3_S": 3.6606,
    "IQ3_M": 3.7628,
    "IQ4_XS": 4.4597,
    "IQ4_NL": 4.6818,
    "Q2_K_S": 2.9697,
    "Q2_K": 3.1593,
    "Q3_K_S": 3.6429,
    "Q3_K_L": 4.2979,
    "Q4_K_S": 4.6672,
    "Q4_K_M": 4.8944,
    "Q5_K_S": 5.5704,
    "Q5_K_M": 5.7036,
    "Q6_K": 6.5633,
    "Q8_0": 8.5008,
    "F16": 16.0005,
}


@pytest.mark.parametrize(("gguf_type", "bpw"), sorted(LLAMA_31_8B_BPW.items()))
def test_bits_per_weight_match_llama_cpp_readme(
    llama3_8b: ModelSpec, gguf_type: str, bpw: float
) -> None:
    assert round(gguf_bits_per_weight(llama3_8b, gguf_type), 4) == pytest.approx(
        bpw, abs=1e-4
    )


def test_smollm2_k_quants_fall_back_on_180_of_272_tensors(smollm2: ModelSpec) -> None:
    types = gguf_tensor_types(smollm2, "Q4_K_M")
    assert len(types) == 272
    assert gguf_fallback_count(smollm2, "Q4_K_M") == 180


def test_width_576_sends_q4_k_to_q5_0_and_q6_k_to_q8_0(smollm2: ModelSpec) -> None:
    types = dict(gguf_tensor_types(smollm2, "Q4_K_M"))
    assert types["blk.5.attn_q.weight"] == "Q5_0"  # Q4_K -> Q5_0
    assert types["blk.0.attn_v.weight"] == "Q8_0"  # use_more_bits Q6_K -> Q8_0
    assert types["blk.0.ffn_down.weight"] == "Q6_K"  # ne0 = 1536 fits 256-blocks
    assert types["blk.4.ffn_down.weight"] == "Q4_K"
    assert types["token_embd.weight"] == "Q8_0"  # tied output, 576 % 256 != 0
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_q4_k_m_gives_more_bits_on_the_use_more_bits_layers(
    llama3_8b: ModelSpec,
) -> None:
    types = dict(gguf_tensor_types(llama3_8b, "Q4_K_M"))
    more = [i for i in range(32) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert types["output.weight"] == "Q6_K"
    assert types["token_embd.weight"] == "Q4_K"


def test_70b_class_llama_bumps_attn_v_to_q5_k(llama3_70b: ModelSpec) -> None:
    types = dict(gguf_tensor_types(llama3_70b, "Q4_K_S"))
    assert types["blk.10.attn_v.weight"] == "Q5_K"
    assert types["blk.10.attn_q.weight"] == "Q4_K"


def test_eight_expert_models_keep_attn_v_and_k_at_q8_0(mixtral: ModelSpec) -> None:
    types = dict(gguf_tensor_types(mixtral, "Q4_K_M"))
    assert types["blk.3.attn_v.weight"] == "Q8_0"
    assert types["blk.3.attn_k.weight"] == "Q8_0"
    assert types["blk.3.ffn_gate_inp.weight"] == "F32"  # routers are never quantized


def test_mxfp4_moe_quantizes_experts_only(mixtral: ModelSpec) -> None:
    types = dict(gguf_tensor_types(mixtral, "MXFP4_MOE"))
    assert types["blk.0.ffn_up_exps.weight"] == "MXFP4"
    assert types["blk.0.attn_q.weight"] == "Q8_0"
    assert types["output.weight"] == "Q8_0"


def test_mla_k_b_falls_back_because_128_is_not_a_k_block(
    deepseek_v3: ModelSpec,
) -> None:
    types = dict(gguf_tensor_types(deepseek_v3, "Q4_K_M"))
    assert types["blk.0.attn_k_b.weight"] == "Q5_0"
    assert types["blk.5.ffn_down_exps.weight"] in ("Q4_K", "Q6_K")


def test_a_row_that_fits_no_32_block_falls_back_to_f16() -> None:
    odd = model_spec_from_config(
        {
            "model_type": "llama",
            "hidden_size": 100,
            "intermediate_size": 200,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 1000,
        }
    )
    types = dict(gguf_tensor_types(odd, "Q4_K_M"))
    assert types["blk.0.attn_q.weight"] == "F16"
    assert gguf_fallback_count(odd, "Q4_K_M") > 0


def test_file_bytes_exceed_tensor_bytes_by_the_header(smollm2: ModelSpec) -> None:
    data_bytes = gguf_bits_per_weight(smollm2, "Q8_0") * 134_515_008 / 8
    header = gguf_file_bytes(smollm2, "Q8_0") - data_bytes
    assert 1_000_000 < header < 3_000_000  # a 49k-token BPE vocabulary and merges


def test_unknown_gguf_type_is_refused(smollm2: ModelSpec) -> None:
    with pytest.raises(ValueError, match="Q4_K_M"):
        gguf_tensor_types(smollm2, "Q4_K_X")


@pytest.mark.parametrize(
    ("vocab_size", "sentencepiece"), [(32_064, True), (32_011, True), (100_352, False)]
)
def test_phi3_metadata_is_sized_by_its_tokenizer_kind(
    vocab_size: int, sentencepiece: bool
) -> None:
    # Phi-3/3.5 keep Llama-2's SentencePiece vocabulary (no merges in the GGUF);
    # Phi-4, also model_type phi3, has a 100k byte-level BPE with merges.
    from planner.engine.gguf_file import tokenizer_is_sentencepiece

    spec = model_spec_from_config(
        {
            "model_type": "phi3",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": vocab_size,
        }
    )
    assert tokenizer_is_sentencepiece(spec) is sentencepiece
