"""parse_format and list_formats: canonical ids, case-insensitivity, helpful errors."""

from __future__ import annotations

import pytest

from planner.engine import FormatError, list_formats, parse_format
from planner.engine.gguf_rules import GGUF_FILE_TYPES


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("FP16", "fp16"),
        ("float16", "fp16"),
        ("BF16", "bf16"),
        ("fp32", "fp32"),
        ("FP8", "fp8"),
        ("int8", "int8"),
        ("GPTQ-4bit-G128", "gptq-4bit-g128"),
        ("gptq-3bit-g-1", "gptq-3bit-g-1"),
        ("awq-4bit-g64", "awq-4bit-g64"),
        ("rtn-int4-g256", "rtn-int4-g256"),
        ("gguf-q4_k_m", "gguf-Q4_K_M"),
        ("q8_0", "gguf-Q8_0"),
        ("  gguf-IQ2_XXS ", "gguf-IQ2_XXS"),
        ("gguf-mxfp4_moe", "gguf-MXFP4_MOE"),
    ],
)
def test_it_parses_case_insensitively_to_the_canonical_id(
    text: str, canonical: str
) -> None:
    assert parse_format(text).id == canonical


def test_every_llama_quantize_type_is_a_format() -> None:
    ids = {f.id for f in list_formats()}
    assert {f"gguf-{t}" for t in GGUF_FILE_TYPES} <= ids
    for t in ("Q4_K_M", "IQ1_S", "TQ1_0", "TQ2_0", "MXFP4_MOE", "Q2_K_S", "IQ3_M"):
        assert f"gguf-{t}" in ids


def test_listed_formats_have_the_documented_fields() -> None:
    families = {"fp", "int8", "gptq", "awq", "gguf", "rtn"}
    for f in list_formats():
        assert f.family in families
        assert f.label and f.description
        assert 1 <= f.nominal_bits_per_weight <= 32
        assert parse_format(f.id) == f
    assert parse_format("gptq-4bit-g128").needs_cuda
    assert not parse_format("gguf-Q4_K_M").needs_cuda
    assert parse_format("gguf-IQ2_XXS").needs_imatrix
    assert not parse_format("gguf-Q4_K_M").needs_imatrix


def test_gptq_nominal_bits_count_scales_and_zeros() -> None:
    assert parse_format("gptq-4bit-g128").nominal_bits_per_weight == pytest.approx(
        4.15625, abs=1e-4
    )
    assert parse_format("gptq-4bit-g-1").nominal_bits_per_weight == 4.0


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("gguf-Q4_K_X", "gguf-Q4_K_M"),
        ("q4km", "gguf-"),
        ("gptq-5bit-g128", "2, 3, 4, 8"),
        ("awq-3bit-g128", "4-bit only"),
        ("awq-4bit-g-1", "group size"),
        ("gptq-4bit-g100", "group size"),
        ("rtn-int4-g100", "power of two"),
        ("fp17", "fp16"),
        ("", "expected"),
    ],
)
def test_unknown_formats_raise_format_error_with_close_matches(
    text: str, hint: str
) -> None:
    with pytest.raises(FormatError, match=hint):
        parse_format(text)


def test_a_non_string_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        parse_format(4)  # type: ignore[arg-type]
