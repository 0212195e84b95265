"""llama_eval: perplexity scored as llama-perplexity scores it, KLD, speed, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantjobs.backends.base import BackendError, EvaluateRequest
from quantjobs.backends.llama_eval import (
    LlamaLogs,
    LlamaSession,
    _normalise_answer,
    evaluate_gguf,
    score_tokens,
)
from quantjobs.evaltext import default_eval_text
from quantjobs.samples import sample_path
from tests.llama_tools import llama_perplexity_reference

SAMPLE = "smollm2-135m-instruct-q4_1"


def nothing(*_args: object) -> None:
    return None


def request(**overrides: object) -> EvaluateRequest:
    fields: dict[str, object] = {
        "model_path": sample_path(SAMPLE),
        "model_kind": "gguf",
        "reference_path": sample_path(SAMPLE),
        "reference_kind": "gguf",
        "text": default_eval_text(),
        "context_tokens": 256,
        "max_chunks": 2,
        # Small speed tests: the sample is tiny and these tests are about scoring.
        "generation_tokens": 16,
        "bench_prompt_tokens": 64,
        "bench_repetitions": 2,
    }
    fields.update(overrides)
    return EvaluateRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def session() -> Iterator[LlamaSession]:
    with LlamaSession(sample_path(SAMPLE), n_ctx=512) as s:
        yield s


def test_tokenize_follows_the_models_bos_setting(session: LlamaSession) -> None:
    assert session.add_bos is False  # the sample's tokenizer.ggml.add_bos_token
    tokens = session.tokenize("Hello world")
    assert tokens and session.detokenize(tokens) == "Hello world"
    assert session.n_vocab == 49152


def test_the_default_text_is_long_enough_for_ten_windows(session: LlamaSession) -> None:
    assert len(session.tokenize(default_eval_text())) >= 10 * 512


def test_a_model_compared_with_itself_agrees_exactly() -> None:
    progress: list[tuple[float, str]] = []
    measured = evaluate_gguf(request(), lambda f, s: progress.append((f, s)), nothing)
    assert measured.perplexity == pytest.approx(measured.base_perplexity, rel=1e-6)
    assert abs(measured.kl_divergence) < 1e-6
    assert measured.top1_agreement == 1.0
    # llama-perplexity's positions: the second half of each chunk, minus its last.
    assert measured.tokens_evaluated == 2 * (256 - 128 - 1)
    assert 5 < measured.perplexity < 50
    assert measured.exact_match is None
    # Memory and speed come from a fresh serving process, not this one.
    assert measured.serving is not None
    assert measured.serving["pid"] != os.getpid()
    assert measured.peak_memory_bytes == measured.serving["peak_memory_bytes"]
    assert measured.generation_tokens_per_s == pytest.approx(
        measured.serving["generation"]["median_tokens_per_s"], rel=1e-3
    )
    assert measured.serving["generation"]["repetitions"] == 2
    assert progress[-1] == (1.0, "done")
    assert [f for f, _ in progress] == sorted(f for f, _ in progress)


def test_a_text_shorter_than_two_windows_is_refused() -> None:
    with pytest.raises(BackendError, match="needs at least 512. Use a longer text"):
        evaluate_gguf(request(text="Only a few words."), nothing, nothing)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"model_kind": "hf"}, "compares a GGUF model with a GGUF reference"),
        ({"context_tokens": 255}, "even number of at least 16"),
    ],
)
def test_bad_requests_are_refused(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(BackendError, match=reason):
        evaluate_gguf(request(**overrides), nothing, nothing)


def test_a_file_llama_cpp_cannot_load_gives_its_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"NOTAGGUF" * 64)
    with pytest.raises(
        BackendError, match=r"llama.cpp could not load bogus.gguf: .*invalid magic"
    ):
        LlamaSession(bogus, n_ctx=64)


def test_answers_are_compared_after_normalising() -> None:
    assert _normalise_answer("  Paris. ") == _normalise_answer("paris")
    assert _normalise_answer("New  York") == "new york"
    assert _normalise_answer("4") != _normalise_answer("40")


def test_exact_match_scores_the_greedy_first_line_of_both_models() -> None:
    measured = evaluate_gguf(
        request(
            max_chunks=2,
            qa_pairs=(("The capital of France is", "Paris"), ("2 + 2 =", "banana")),
            chat_template="off",
        ),
        nothing,
        nothing,
    )
    task = measured.task
    assert task is not None and task["questions"] == 2
    assert task["normalised_match"] == 0.5
    assert measured.exact_match == task["exact_match"] <= task["normalised_match"]
    # The model is its own reference here: same answers, no drop.
    assert task["reference_normalised_match"] == 0.5
    assert task["normalised_match_drop"]["points"] == 0.0
    rows = task["rows"]
    assert [r["answer"] for r in rows] == ["Paris", "banana"]
    assert rows[0]["normalised"] and not rows[1]["normalised"]
    assert rows[0]["output"] == rows[0]["reference_output"]
    assert task["chat_template"] is False


def test_an_instruct_model_gets_its_questions_in_its_chat_template() -> None:
    logs: list[str] = []
    measured = evaluate_gguf(
        request(qa_pairs=(("What is the capital of France? One word.", "Paris"),)),
        nothing,
        logs.append,
    )
    assert measured.task is not None and measured.task["chat_template"] is True
    assert any("chat template" in line for line in logs)
    (row,) = measured.task["rows"]
    assert row["output"]  # the model answered something on its first line


@pytest.mark.slow
def test_our_perplexity_equals_llama_perplexity(session: LlamaSession) -> None:
    """The independent cross-check: llama.cpp's own tool, built from the same sources."""
    text = default_eval_text()
    ours = score_tokens(session, session.tokenize(text), n_ctx=512, max_chunks=4)
    theirs = llama_perplexity_reference(sample_path(SAMPLE), text, 512, max_chunks=4)
    assert ours.count == 4 * 255
    # llama-perplexity prints 4 decimals; the scoring is the same to ~1e-6.
    assert ours.perplexity == pytest.approx(theirs, rel=5e-3)
    assert abs(ours.perplexity - theirs) < 1e-3


def test_log_marks_stay_valid_after_the_buffer_wraps() -> None:
    logs = LlamaLogs(max_lines=10)
    for i in range(25):
        logs._on_log(3, f"warning {i}\n".encode())
    mark = logs.mark()
    logs._on_log(3, b"-> falling back\n")
    logs._on_log(4, b"gguf_init: invalid magic characters\n")
    logs._on_log(4, b"llama_model_load: error loading model\n")
    logs._on_log(4, b"=========\n")  # rules of boxed messages are dropped
    assert logs.since(mark) == [
        "-> falling back",
        "gguf_init: invalid magic characters",
        "llama_model_load: error loading model",
    ]
    assert logs.reason(mark) == (
        "gguf_init: invalid magic characters; llama_model_load: error loading model"
    )
    assert logs.reason(logs.mark()) == "no reason given"


def test_log_messages_in_pieces_are_joined() -> None:
    logs = LlamaLogs()
    mark = logs.mark()
    logs._on_log(4, b"failed to ")
    logs._on_log(5, b"quantize: disk full\n")
    assert logs.since(mark) == ["failed to quantize: disk full"]
