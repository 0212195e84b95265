"""Evaluation text: the built-in default, and parsing of files users upload.

Perplexity and KL divergence are measured on plain text; exact-match scoring uses
``prompt`` / ``answer`` pairs. Users upload either a ``.txt`` file (UTF-8 prose)
or a ``.jsonl`` file whose lines are objects with ``text``, or with ``prompt``
and ``answer``. Every problem raises :class:`EvalTextError` with a message that
says what to change; it is a ``ValueError`` so forms can treat it as one.

Plain Python: no Django, no numpy, nothing heavier than the standard library.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

__all__ = [
    "CALIBRATION_TOPICS",
    "DEFAULT_TOPICS",
    "MAX_ANSWER_CHARS",
    "MAX_EVAL_FILE_BYTES",
    "MAX_JSONL_LINES",
    "MAX_PROMPT_CHARS",
    "MAX_QA_PAIRS",
    "MIN_TEXT_CHARS",
    "EvalText",
    "EvalTextError",
    "default_calibration_text",
    "default_eval_text",
    "parse_eval_file",
    "parse_jsonl",
    "parse_txt",
]

MAX_EVAL_FILE_BYTES = 8 * 1024 * 1024
"""Upload limit: ~2M tokens, far more than an evaluation job scores."""

MIN_TEXT_CHARS = 4_000
# Calibration (importance matrix, AWQ, GPTQ) needs at least one 512-token window.
MIN_CALIBRATION_CHARS = 2_000
"""~1,000 tokens: the least that fills two 512-token windows, as perplexity needs."""

MAX_JSONL_LINES = 100_000
MAX_QA_PAIRS = 1_000
MAX_PROMPT_CHARS = 4_000
MAX_ANSWER_CHARS = 500

# Share of characters that may be control characters before a ".txt" is taken
# for a binary file renamed; tabs, newlines and carriage returns are fine.
_MAX_CONTROL_CHAR_RATIO = 0.01

DEFAULT_TOPICS: tuple[str, ...] = (
    "execmodel",
    "naming",
    "exceptions",
    "import",
    "truth",
    "comparisons",
    "booleans",
    "assignment",
    "compound",
)
"""pydoc topics, prose-heavy, concatenated in this order for the default text."""

CALIBRATION_TOPICS: tuple[str, ...] = (
    "typesseq",
    "string-methods",
    "formatstrings",
    "specialnames",
    "customization",
    "types",
)
"""pydoc topics for the built-in importance-matrix calibration text: none of them
is in DEFAULT_TOPICS, so a model is not calibrated on the text it is scored on."""

DEFAULT_TEXT_CHARS = 24_000
"""Length of the default text: ~5,500 tokens for a GPT-2-style vocabulary."""


class EvalTextError(ValueError):
    """An evaluation file that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class EvalText:
    """Text to measure perplexity on, and optional prompt/answer pairs."""

    text: str
    qa_pairs: tuple[tuple[str, str], ...] = ()
    source: str = "default"
    text_is_default: bool = False  # a pairs-only JSONL: text is the built-in one


def default_eval_text(max_chars: int = DEFAULT_TEXT_CHARS) -> str:
    """The built-in evaluation text: Python's own reference prose, offline.

    Deterministic for a given Python version: ``pydoc_data.topics`` ships with
    the interpreter, so every worker of one deployment scores the same text.
    """
    return _topics_text(DEFAULT_TOPICS, exclude=(), max_chars=max_chars)


def default_calibration_text(max_chars: int = DEFAULT_TEXT_CHARS) -> str:
    """Built-in calibration text for importance matrices, disjoint from the eval text."""
    return _topics_text(CALIBRATION_TOPICS, exclude=DEFAULT_TOPICS, max_chars=max_chars)


def _topics_text(
    preferred: tuple[str, ...], exclude: tuple[str, ...], max_chars: int
) -> str:
    from pydoc_data.topics import topics

    names = [name for name in preferred if name in topics]
    # Another Python version may rename a topic; fill up from the sorted rest
    # so the text is still long enough and still deterministic.
    names += [
        name for name in sorted(topics) if name not in names and name not in exclude
    ]
    parts: list[str] = []
    total = 0
    for name in names:
        body = _normalise(topics[name]).strip()
        if not body:
            continue
        parts.append(body)
        total += len(body) + 2
        if total >= max_chars:
            break
    text = "\n\n".join(parts)
    if len(text) > max_chars:
        # Cut at a paragraph boundary so the last window ends on whole text.
        cut = text.rfind("\n\n", 0, max_chars)
        text = text[: cut if cut > max_chars // 2 else max_chars]
    return text


def _normalise(text: str) -> str:
    # Windows line ends and a BOM would change tokenisation between uploads of
    # the "same" file; NFC keeps composed and decomposed accents identical.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    return unicodedata.normalize("NFC", text)


def _decode(data: bytes, filename: str) -> str:
    if len(data) > MAX_EVAL_FILE_BYTES:
        raise EvalTextError(
            f"{filename} is {len(data) / 2**20:.1f} MiB; the limit is "
            f"{MAX_EVAL_FILE_BYTES // 2**20} MiB. Upload a shorter sample."
        )
    if not data.strip():
        raise EvalTextError(f"{filename} is empty.")
    if b"\x00" in data:
        raise EvalTextError(
            f"{filename} looks like a binary file (it contains NUL bytes); "
            "upload plain UTF-8 text."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EvalTextError(
            f"{filename} is not valid UTF-8 (first bad byte on line {line}); "
            "save it as UTF-8 and upload it again."
        ) from None
    control = sum(
        1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f"
    )
    if control > _MAX_CONTROL_CHAR_RATIO * len(text):
        raise EvalTextError(
            f"{filename} has {control} control characters; it does not look like "
            "text. Upload plain UTF-8 prose."
        )
    return _normalise(text)


def _check_length(text: str, filename: str) -> None:
    if len(text) < MIN_TEXT_CHARS:
        raise EvalTextError(
            f"{filename} has {len(text):,} characters of text; at least "
            f"{MIN_TEXT_CHARS:,} are needed (about 1,000 tokens, two 512-token "
            "windows). Add more text."
        )


def parse_txt(data: bytes, filename: str = "the file") -> EvalText:
    """A ``.txt`` upload: UTF-8 prose, long enough for two context windows."""
    text = _decode(data, filename).strip()
    _check_length(text, filename)
    return EvalText(text=text, source=filename)


def _string_field(obj: dict[str, object], key: str, lineno: int) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise EvalTextError(
            f"Line {lineno}: {key!r} must be a string, not {type(value).__name__}."
        )
    return value


def parse_jsonl(data: bytes, filename: str = "the file") -> EvalText:
    """A ``.jsonl`` upload: ``{"text": ...}`` lines and/or prompt/answer lines."""
    content = _decode(data, filename)
    lines = content.split("\n")
    if len(lines) > MAX_JSONL_LINES:
        raise EvalTextError(
            f"{filename} has {len(lines):,} lines; the limit is {MAX_JSONL_LINES:,}."
        )
    texts: list[str] = []
    pairs: list[tuple[str, str]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalTextError(
                f"Line {lineno}: not valid JSON ({exc.msg} at column {exc.colno}). "
                "Each line must be one JSON object."
            ) from None
        if not isinstance(obj, dict):
            raise EvalTextError(
                f"Line {lineno}: expected a JSON object such as "
                '{"text": "..."} or {"prompt": "...", "answer": "..."}, '
                f"got {type(obj).__name__}."
            )
        if "text" in obj:
            text = _string_field(obj, "text", lineno)
            if text.strip():
                texts.append(text.strip())
            continue
        if "prompt" in obj or "answer" in obj:
            if "prompt" not in obj or "answer" not in obj:
                missing = "answer" if "prompt" in obj else "prompt"
                raise EvalTextError(f"Line {lineno}: has no {missing!r}.")
            prompt = _string_field(obj, "prompt", lineno)
            answer = _string_field(obj, "answer", lineno).strip()
            if not prompt.strip() or not answer:
                raise EvalTextError(
                    f"Line {lineno}: 'prompt' and 'answer' must not be empty."
                )
            if len(prompt) > MAX_PROMPT_CHARS or len(answer) > MAX_ANSWER_CHARS:
                raise EvalTextError(
                    f"Line {lineno}: prompts are limited to {MAX_PROMPT_CHARS:,} "
                    f"and answers to {MAX_ANSWER_CHARS:,} characters."
                )
            pairs.append((prompt, answer))
            if len(pairs) > MAX_QA_PAIRS:
                raise EvalTextError(
                    f"Line {lineno}: more than {MAX_QA_PAIRS:,} prompt/answer pairs; "
                    "split the file."
                )
            continue
        keys = ", ".join(sorted(obj)) or "none"
        raise EvalTextError(
            f"Line {lineno}: expected a 'text' key, or 'prompt' and 'answer'; "
            f"found keys: {keys}."
        )
    text = "\n\n".join(texts)
    if not text and not pairs:
        raise EvalTextError(
            f"{filename} has no 'text' lines and no prompt/answer pairs."
        )
    if not text:
        # Prompt/answer pairs only: perplexity is still measured, on the
        # built-in text, so every job reports the same set of numbers.
        return EvalText(
            text=default_eval_text(),
            qa_pairs=tuple(pairs),
            source=filename,
            text_is_default=True,
        )
    _check_length(text, filename)
    return EvalText(text=text, qa_pairs=tuple(pairs), source=filename)


def parse_eval_file(filename: str, data: bytes) -> EvalText:
    """Parse an uploaded evaluation file by its extension (``.txt``, ``.jsonl``)."""
    lower = filename.lower()
    if lower.endswith(".txt"):
        return parse_txt(data, filename)
    if lower.endswith(".jsonl"):
        return parse_jsonl(data, filename)
    raise EvalTextError(
        f"{filename}: upload a .txt file (plain UTF-8 text) or a .jsonl file "
        '(one {"text": ...} or {"prompt": ..., "answer": ...} object per line).'
    )


def parse_calibration_text(data: bytes, filename: str = "the file") -> str:
    """A calibration upload: plain UTF-8 ``.txt``, at least one 512-token window."""
    if not filename.lower().endswith(".txt"):
        raise EvalTextError(
            f"{filename}: calibration text must be a .txt file of plain UTF-8 text."
        )
    text = _decode(data, filename).strip()
    if len(text) < MIN_CALIBRATION_CHARS:
        raise EvalTextError(
            f"{filename} has {len(text):,} characters; calibration needs at least "
            f"{MIN_CALIBRATION_CHARS:,} (about one 512-token window). Add more text "
            "of the kind the model will serve."
        )
    return text
