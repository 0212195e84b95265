"""Importance matrices through llama.cpp's eval callback, and the IQ types they enable."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from quantjobs.backends.base import QuantizeRequest
from quantjobs.backends.gguf import GgufBackend
from quantjobs.backends.gguf.dequant import dequantize_to_f16
from quantjobs.backends.gguf.imatrix import ImatrixResult, compute_imatrix
from quantjobs.backends.llama_eval import LlamaSession
from quantjobs.evaltext import default_calibration_text
from quantjobs.samples import sample_path
from tests.llama_tools import ensure_llama_tool

SAMPLE = "smollm2-135m-instruct-q4_1"
CHUNKS = 3


def nothing(*_args: object) -> None:
    return None


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("imatrix") / "base-F16.gguf"
    dequantize_to_f16(sample_path(SAMPLE), path, nothing, nothing)
    yield path


@pytest.fixture(scope="module")
def imatrix(base: Path) -> ImatrixResult:
    return compute_imatrix(
        base,
        default_calibration_text(),
        max_chunks=CHUNKS,
        progress=nothing,
        log=nothing,
    )


@pytest.mark.slow
def test_every_block_matrix_gets_one_value_per_input_column(
    imatrix: ImatrixResult,
) -> None:
    assert len(imatrix.values) == 30 * 7  # q, k, v, o, gate, up, down in 30 blocks
    assert imatrix.values["blk.0.attn_q.weight"].shape == (576,)
    assert imatrix.values["blk.29.ffn_down.weight"].shape == (1536,)  # last layer too
    assert (
        "output.weight" not in imatrix.values
        and "token_embd.weight" not in imatrix.values
    )
    assert imatrix.tokens == CHUNKS * 512
    for values in imatrix.values.values():
        assert values.dtype == np.float32
        assert np.isfinite(values).all() and (values >= 0).all() and values.max() > 0


@pytest.mark.slow
def test_the_imatrix_equals_llama_imatrix_on_the_same_text(
    base: Path, imatrix: ImatrixResult, tmp_path: Path
) -> None:
    from gguf import GGUFReader

    tool = ensure_llama_tool("llama-imatrix")
    text_file = tmp_path / "calibration.txt"
    text_file.write_text(default_calibration_text(), encoding="utf-8")
    out = tmp_path / "imatrix.gguf"
    subprocess.run(
        [str(tool), "-m", str(base), "-f", str(text_file), "-c", "512", "-b", "512",
         "--chunks", str(CHUNKS), "-t", "2", "-o", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    theirs = {
        t.name: np.asarray(t.data, dtype=np.float64)
        for t in GGUFReader(str(out)).tensors
    }
    assert len(theirs) == 2 * len(
        imatrix.values
    )  # "<name>.in_sum2" and "<name>.counts"
    for name, ours in imatrix.values.items():
        sums = theirs[f"{name}.in_sum2"].reshape(-1)
        count = theirs[f"{name}.counts"].reshape(-1)[0]
        assert count == CHUNKS * 512
        np.testing.assert_allclose(ours, sums / count, rtol=1e-4, err_msg=name)


@pytest.mark.slow
def test_iq2_xxs_is_quantized_with_a_computed_imatrix(tmp_path: Path) -> None:
    log: list[str] = []
    result = GgufBackend().quantize(
        QuantizeRequest(
            source_path=sample_path(SAMPLE),
            source_kind="gguf",
            format="gguf-IQ2_XXS",
            work_dir=tmp_path,
            calibration_text=default_calibration_text(),
            options={"imatrix_chunks": CHUNKS},
        ),
        nothing,
        log.append,
    )
    meta = result.metadata
    assert meta["imatrix"]["matrices"] == 210 and meta["imatrix"]["chunks"] == CHUNKS
    assert meta["imatrix"]["source"] == "request"
    histogram = meta["types_histogram"]
    # 1536-wide ffn_down rows take IQ2_XXS; 576-wide rows fall back to IQ4_NL.
    assert histogram["IQ2_XXS"] > 0 and histogram["IQ4_NL"] > 0
    assert meta["size_bytes"] < 90 * 2**20
    with LlamaSession(result.artifact_path, n_ctx=64) as session:
        tokens, _, _ = session.generate_greedy(session.tokenize("Python is"), 8)
    assert tokens


@pytest.mark.slow
def test_q4_k_m_uses_an_importance_matrix_from_the_users_text_on_request(
    tmp_path: Path,
) -> None:
    own_text = default_calibration_text()[::-1]  # any text that is not the default
    result = GgufBackend().quantize(
        QuantizeRequest(
            source_path=sample_path(SAMPLE),
            source_kind="gguf",
            format="gguf-Q4_K_M",
            work_dir=tmp_path,
            calibration_text=own_text,
            options={"imatrix": "on", "imatrix_chunks": 1},
        ),
        nothing,
        nothing,
    )
    meta = result.metadata["imatrix"]
    assert meta["source"] == "request" and meta["tokens"] == 512  # tokens really used


@pytest.mark.slow
def test_a_jobs_second_format_reuses_the_first_ones_importance_matrix(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    metas = []
    for index, fmt in enumerate(("gguf-Q4_K_M", "gguf-Q6_K")):
        out = tmp_path / f"out-{index}"
        out.mkdir()
        result = GgufBackend().quantize(
            QuantizeRequest(
                source_path=sample_path(SAMPLE),
                source_kind="gguf",
                format=fmt,
                work_dir=out,
                calibration_text=default_calibration_text(),
                options={"imatrix": "on", "imatrix_chunks": 1},
                shared_dir=shared,
            ),
            nothing,
            nothing,
        )
        metas.append(result.metadata["imatrix"])
    first, second = metas
    assert "reused" not in first and second["reused"] is True
    assert second["tokens"] == first["tokens"] == 512
