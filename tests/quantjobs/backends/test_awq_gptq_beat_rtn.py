"""The real behaviour check: on the converted sample (SmolLM2-135M), AWQ and GPTQ
int4 g64 lose less than round-to-nearest int4 g64.

Measured as mean KL(fp16 model ‖ quantized) on held-out pydoc text (never used for
calibration), same tokens for every model. Calibration is kept small for CI
(8 samples x 128 tokens); bench/quant_methods.py runs the full-size comparison.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from quantjobs.backends import load_backend
from quantjobs.backends.base import EvaluateRequest, EvaluateResult, QuantizeRequest
from quantjobs.backends.gguf_to_hf import convert_cached
from quantjobs.backends.torchq import corpus
from tests.gguf_tiny import sample_gguf_path

pytestmark = pytest.mark.slow
torch.set_num_threads(2)
SAMPLE_CACHE = Path(tempfile.gettempdir()) / "quantplan-tests" / "hf-convert"
CALIBRATION = {"calibration_samples": 8, "calibration_seq_len": 128}


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


@pytest.fixture(scope="module")
def sample_hf() -> Path:
    return convert_cached(sample_gguf_path(), SAMPLE_CACHE, quiet, quiet)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("methods")


def quantize_and_measure(
    method: str, fmt: str, source: Path, work: Path, **options: Any
) -> tuple[EvaluateResult, float]:
    backend = load_backend(method)
    job_dir = work / fmt
    job_dir.mkdir()
    started = time.perf_counter()
    result = backend.quantize(
        QuantizeRequest(
            source_path=source,
            source_kind="hf",
            format=fmt,
            work_dir=job_dir,
            calibration_text=corpus.calibration_text(),
            threads=2,
            options={"allow_cpu": True, **options},
        ),
        quiet,
        quiet,
    )
    quantize_s = time.perf_counter() - started
    evaluation = backend.evaluate(
        EvaluateRequest(
            model_path=result.artifact_path,
            model_kind="hf",
            reference_path=result.reference_path,
            reference_kind="hf",
            text=corpus.held_out_text(),
            context_tokens=256,
            max_chunks=4,
            generation_tokens=8,
        ),
        quiet,
        quiet,
    )
    print(
        f"\n{fmt}: KLD {evaluation.kl_divergence:.4f}, ppl {evaluation.perplexity:.3f}"
        f" (fp16 {evaluation.base_perplexity:.3f}), top-1 "
        f"{evaluation.top1_agreement:.3f}, quantize {quantize_s:.0f} s"
    )
    return evaluation, quantize_s


@pytest.fixture(scope="module")
def rtn(sample_hf: Path, work: Path) -> EvaluateResult:
    return quantize_and_measure("rtn", "rtn-int4-g64", sample_hf, work)[0]


def test_gptq_int4_g64_beats_rtn_int4_g64(
    sample_hf: Path, work: Path, rtn: EvaluateResult
) -> None:
    gptq, _ = quantize_and_measure(
        "gptq", "gptq-4bit-g64", sample_hf, work, **CALIBRATION
    )
    assert gptq.tokens_evaluated == rtn.tokens_evaluated
    assert gptq.kl_divergence < 0.9 * rtn.kl_divergence
    assert gptq.perplexity < rtn.perplexity


def test_awq_int4_g64_beats_rtn_int4_g64(
    sample_hf: Path, work: Path, rtn: EvaluateResult
) -> None:
    awq, _ = quantize_and_measure(
        "awq", "awq-4bit-g64", sample_hf, work, apply_clip=False, **CALIBRATION
    )
    assert awq.tokens_evaluated == rtn.tokens_evaluated
    assert awq.kl_divergence < 0.9 * rtn.kl_divergence
    assert awq.perplexity < rtn.perplexity
