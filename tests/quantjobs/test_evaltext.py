"""Evaluation text: the built-in default, and user uploads refused with reasons."""

from __future__ import annotations

import json

import pytest

from quantjobs.evaltext import (
    CALIBRATION_TOPICS,
    DEFAULT_TOPICS,
    MAX_EVAL_FILE_BYTES,
    MAX_QA_PAIRS,
    MIN_TEXT_CHARS,
    EvalTextError,
    default_calibration_text,
    default_eval_text,
    parse_eval_file,
)

PROSE = ("The quick brown fox jumps over the lazy dog. " * 120).strip()


def jsonl(*rows: object) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_the_default_text_is_deterministic_and_a_few_thousand_tokens() -> None:
    text = default_eval_text()
    assert text == default_eval_text()
    # ~4 characters per token: 5,000-6,000 tokens, enough for 10 windows of 512.
    assert 20_000 <= len(text) <= 24_000
    assert "\r" not in text and "\x00" not in text
    assert text.startswith(default_eval_text(4_000)[:1_000])


def test_the_calibration_text_does_not_overlap_the_evaluation_text() -> None:
    assert not set(CALIBRATION_TOPICS) & set(DEFAULT_TOPICS)
    calibration = default_calibration_text()
    assert len(calibration) >= 20_000
    paragraphs = {p for p in default_eval_text().split("\n\n") if len(p) > 200}
    assert not any(p in calibration for p in paragraphs)


def test_a_txt_file_is_decoded_and_normalised() -> None:
    data = ("\ufeff" + PROSE.replace(". ", ".\r\n")).encode("utf-8")
    parsed = parse_eval_file("notes.TXT", data)
    assert "\r" not in parsed.text and not parsed.text.startswith("\ufeff")
    assert parsed.qa_pairs == ()
    assert parsed.source == "notes.TXT"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "notes.txt is empty."),
        (b"  \n\t ", "notes.txt is empty."),
        (b"text\x00with a NUL" * 400, "binary file (it contains NUL bytes)"),
        (b"caf\xe9 " * 1000, "not valid UTF-8 (first bad byte on line 1)"),
        (("ab\x01" * 2000).encode(), "control characters"),
        (b"too short", f"9 characters of text; at least {MIN_TEXT_CHARS:,}"),
    ],
)
def test_a_bad_txt_file_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(EvalTextError) as excinfo:
        parse_eval_file("notes.txt", data)
    assert reason in str(excinfo.value)


def test_an_oversized_file_is_refused_before_decoding() -> None:
    with pytest.raises(EvalTextError, match="the limit is 8 MiB"):
        parse_eval_file("big.txt", b"a" * (MAX_EVAL_FILE_BYTES + 1))


def test_eval_text_error_is_a_value_error() -> None:
    assert issubclass(EvalTextError, ValueError)


def test_other_extensions_are_refused() -> None:
    with pytest.raises(
        EvalTextError, match=r"upload a \.txt file .* or a \.jsonl file"
    ):
        parse_eval_file("data.csv", PROSE.encode())


def test_jsonl_text_lines_are_joined_and_pairs_kept() -> None:
    data = jsonl(
        {"text": PROSE[:2500]},
        {"prompt": "The capital of France is", "answer": " Paris"},
        {"text": PROSE[:2500]},
    )
    parsed = parse_eval_file("eval.jsonl", data + b"\n\n")
    assert parsed.text == PROSE[:2500] + "\n\n" + PROSE[:2500]
    assert parsed.qa_pairs == (("The capital of France is", "Paris"),)
    assert not parsed.text_is_default


def test_jsonl_with_pairs_only_measures_perplexity_on_the_default_text() -> None:
    parsed = parse_eval_file("qa.jsonl", jsonl({"prompt": "2+2=", "answer": "4"}))
    assert parsed.text == default_eval_text()
    assert parsed.text_is_default
    assert parsed.qa_pairs == (("2+2=", "4"),)


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([json.dumps({"text": PROSE}), "{not json"], "Line 2: not valid JSON"),
        (["[1, 2]"], "Line 1: expected a JSON object"),
        ([json.dumps({"prompt": "x"})], "Line 1: has no 'answer'."),
        ([json.dumps({"answer": "x"})], "Line 1: has no 'prompt'."),
        ([json.dumps({"text": 3})], "Line 1: 'text' must be a string, not int."),
        (
            [json.dumps({"prompt": "x", "answer": " "})],
            "Line 1: 'prompt' and 'answer' must",
        ),
        ([json.dumps({"question": "x"})], "found keys: question"),
        (
            [json.dumps({"prompt": "x" * 5000, "answer": "y"})],
            "Line 1: prompts are limited",
        ),
        ([json.dumps({"text": "short"})], "characters of text; at least"),
        (["", "   "], "is empty"),
    ],
)
def test_bad_jsonl_is_refused_with_the_line_number(
    lines: list[str], reason: str
) -> None:
    with pytest.raises(EvalTextError) as excinfo:
        parse_eval_file("eval.jsonl", "\n".join(lines).encode())
    assert reason in str(excinfo.value)


def test_too_many_pairs_are_refused() -> None:
    rows = [{"prompt": f"q{i}", "answer": "a"} for i in range(MAX_QA_PAIRS + 1)]
    with pytest.raises(
        EvalTextError, match=f"more than {MAX_QA_PAIRS:,} prompt/answer"
    ):
        parse_eval_file("eval.jsonl", jsonl(*rows))
