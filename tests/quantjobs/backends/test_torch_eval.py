"""The torch evaluator on tiny random models: arithmetic, refusals, measurements."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from quantjobs.backends.base import BackendError, EvaluateRequest
from quantjobs.backends.torch_eval import evaluate_hf, normalize_answer
from quantjobs.backends.torchq import corpus
from tests.torch_tiny import build_tiny_llama

torch.set_num_threads(2)


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


def _request(model: Path, reference: Path, **changes: object) -> EvaluateRequest:
    fields: dict[str, object] = {
        "model_path": model,
        "model_kind": "hf",
        "reference_path": reference,
        "reference_kind": "hf",
        "text": corpus.held_out_text()[:20_000],
        "context_tokens": 64,
        "max_chunks": 3,
        "generation_tokens": 8,
        "qa_pairs": (("What is 2+2?", "4"),),
        **changes,
    }
    return EvaluateRequest(**fields)  # type: ignore[arg-type]


def test_a_model_against_itself_has_zero_divergence(tiny_model: Path) -> None:
    stages: list[tuple[float, str]] = []
    result = evaluate_hf(
        _request(tiny_model, tiny_model),
        lambda fraction, stage: stages.append((fraction, stage)),
        quiet,
    )
    assert abs(result.kl_divergence) < 1e-6
    assert result.top1_agreement == 1.0
    assert math.isclose(result.perplexity, result.base_perplexity, rel_tol=1e-6)
    # llama.cpp scoring: positions n/2 .. n-2 of each 64-token chunk.
    assert result.tokens_evaluated == 3 * (64 - 1 - 32)
    assert result.prompt_tokens_per_s > 0 and result.generation_tokens_per_s > 0
    assert result.peak_memory_bytes > 0 and result.load_time_s > 0
    assert result.gpu_peak_memory_bytes is None or result.gpu_peak_memory_bytes > 0
    assert result.exact_match == 0.0  # random weights answer nothing right
    # The reference answered the same questions: paired scores and drop.
    assert result.task is not None
    assert result.task["reference_normalised_match"] == 0.0
    assert result.task["normalised_match_drop"]["points"] == 0.0
    assert len(result.task["rows"]) == result.task["questions"]
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_different_model_diverges(tiny_model: Path, tmp_path: Path) -> None:
    other = build_tiny_llama(tmp_path / "other", seed=1)
    result = evaluate_hf(_request(other, tiny_model, qa_pairs=()), quiet, quiet)
    assert result.kl_divergence > 1e-3
    assert result.exact_match is None


def test_it_refuses_models_that_tokenize_differently(
    tiny_model: Path, tmp_path: Path
) -> None:
    other = build_tiny_llama(tmp_path / "other", vocab_size=400)
    with pytest.raises(BackendError, match="tokenizer splits the text differently"):
        evaluate_hf(_request(other, tiny_model), quiet, quiet)


def test_it_refuses_text_shorter_than_one_chunk(tiny_model: Path) -> None:
    with pytest.raises(BackendError, match="fewer than one chunk"):
        evaluate_hf(_request(tiny_model, tiny_model, text="too short"), quiet, quiet)


def test_it_leaves_gguf_models_to_the_gguf_backend(tiny_model: Path) -> None:
    with pytest.raises(BackendError, match="gguf backend"):
        evaluate_hf(_request(tiny_model, tiny_model, model_kind="gguf"), quiet, quiet)


def test_answers_are_normalized_before_comparison() -> None:
    assert normalize_answer("  Paris. ") == "paris"
    assert normalize_answer("The  U.S.A!") == "the u s a"
