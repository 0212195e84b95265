"""Which GGUF types get an importance matrix: needed, recommended, on request."""

from __future__ import annotations

from pathlib import Path

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


def test_a_later_format_of_the_job_reuses_the_importance_matrix(tmp_path: Path) -> None:
    import numpy as np

    from quantjobs.backends.base import QuantizeRequest
    from quantjobs.backends.gguf.backend import GgufBackend
    from quantjobs.backends.gguf.imatrix import imatrix_cache, imatrix_store

    shared = tmp_path / "shared"
    shared.mkdir()
    base = shared / "base-f16.gguf"
    text = "calibration prose " * 200
    request = QuantizeRequest(
        source_path=base,
        source_kind="gguf",
        format="gguf-Q4_K_M",
        work_dir=tmp_path,
        calibration_text=text,
        options={"imatrix": "on"},
        shared_dir=shared,
    )
    paths = imatrix_cache(shared, base, text, 512, None)
    assert paths is not None
    stored = {"blk.0.attn_k.weight": np.arange(4, dtype=np.float32)}
    imatrix_store(paths, stored, {"tokens": 1024, "chunks": 2, "seconds": 3.0})
    lines: list[str] = []
    # No llama.cpp call: the base file does not even exist.
    values, meta = GgufBackend()._imatrix(
        request, base, 1, lambda _f, _s: None, lines.append
    )
    assert np.array_equal(values["blk.0.attn_k.weight"], stored["blk.0.attn_k.weight"])
    assert meta == {"tokens": 1024, "chunks": 2, "seconds": 3.0, "reused": True}
    assert "1,024 calibration tokens" in lines[0]
    # Another text, context or chunk cap is another matrix.
    assert imatrix_cache(shared, base, text + ".", 512, None) != paths
    assert imatrix_cache(shared, base, text, 256, None) != paths
    assert imatrix_cache(shared, base, text, 512, 2) != paths
    assert imatrix_cache(None, base, text, 512, None) is None
