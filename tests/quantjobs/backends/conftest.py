"""Fixtures the torch backends' tests share: a tiny random Llama and requests for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantjobs.backends.base import QuantizeRequest
from quantjobs.backends.torchq import corpus
from tests.helpers import RequestFactory
from tests.torch_tiny import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama checkpoint; tests read it and never change it."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def calibrated_request() -> RequestFactory:
    """A calibrated method's request on CPU with a small calibration set."""

    def make(source: Path, work: Path, fmt: str, **options: object) -> QuantizeRequest:
        work.mkdir(parents=True, exist_ok=True)
        return QuantizeRequest(
            source_path=source,
            source_kind="hf",
            format=fmt,
            work_dir=work,
            calibration_text=corpus.calibration_text()[:40_000],
            threads=2,
            options={
                "allow_cpu": True,
                "calibration_samples": 4,
                "calibration_seq_len": 64,
                **options,
            },
        )

    return make
