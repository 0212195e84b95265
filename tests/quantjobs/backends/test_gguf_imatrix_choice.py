"""Which GGUF types get an importance matrix: needed, recommended, on request."""

from __future__ import annotations

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.gguf.backend import want_imatrix
from quantjobs.backends.gguf.ftypes import parse_gguf_format


def want(fmt: str, choice: object) -> bool:
    return want_imatrix(parse_gguf_format(fmt), choice)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("gguf-IQ2_XXS", True),  # llama.cpp refuses it without one
        ("gguf-IQ4_XS", True),  # recommended: +16.8% perplexity without one
        ("gguf-Q4_K_M", False),
        ("gguf-Q8_0", False),
        ("gguf-F16", False),
    ],
)
def test_auto_computes_one_where_llama_cpp_needs_or_recommends_it(
    fmt: str, expected: bool
) -> None:
    assert want(fmt, "auto") is expected
    assert want(fmt, None) is expected


def test_on_request_every_quantized_type_gets_one() -> None:
    for fmt in ("gguf-Q4_K_M", "gguf-Q8_0", "gguf-Q2_K", "gguf-IQ4_XS"):
        assert want(fmt, "on") is True
        assert want(fmt, True) is True
    assert want("gguf-F16", "on") is False  # nothing to quantize


def test_off_is_refused_for_a_type_that_needs_one() -> None:
    assert want("gguf-Q4_K_M", "off") is False
    assert want("gguf-IQ4_XS", False) is False
    with pytest.raises(BackendError, match="IQ2_XXS needs an importance matrix"):
        want("gguf-IQ2_XXS", "off")
    with pytest.raises(BackendError, match="imatrix must be one of auto, on, off"):
        want("gguf-Q4_K_M", "sometimes")
