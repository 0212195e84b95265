"""JSON with limits: bodies and pasted configs too deep or with absurd numbers are 400s.

Python's ``json`` parses 100,000 nested brackets into a ``RecursionError`` (a 500 in
DRF, which only catches ``ValueError``) and a 5,000-digit integer into a
``ValueError`` from the int-size guard, or, just under it, into a number the planner
cannot use. Every JSON a client sends goes through :func:`loads_limited` instead.
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20
MAX_FLOAT_CHARS = 40


class JsonLimitError(ValueError):
    """JSON that parses but breaks a limit; the message says which and what to change."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonLimitError(
            f"a number has {len(text.lstrip('-'))} digits; integers may have at most "
            f"{MAX_INT_DIGITS} digits."
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise JsonLimitError(
            f"the number {text[:24]}{'…' if len(text) > 24 else ''} is too long or too "
            f"large; numbers may have at most {MAX_FLOAT_CHARS} characters and must be "
            "finite."
        )
    return value


def _parse_constant(text: str) -> Any:
    raise JsonLimitError(f"{text} is not valid JSON; send a finite number or null.")


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, counted without recursion; stops past ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def loads_limited(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises :class:`ValueError` (never ``RecursionError``) with a
    readable message for bad JSON, nesting deeper than ``max_depth`` or huge numbers."""
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except JsonLimitError:
        raise
    except RecursionError:
        raise JsonLimitError(
            f"JSON nested more than {max_depth} levels deep; flatten it."
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except ValueError as exc:  # e.g. the interpreter's own int-size guard
        raise JsonLimitError(f"JSON number out of range: {exc}") from None
    if json_depth(data, max_depth) > max_depth:
        raise JsonLimitError(
            f"JSON nested more than {max_depth} levels deep; flatten it."
        )
    return data


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with depth and number limits, and objects only at the top."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        context = parser_context or {}
        encoding = context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"The JSON body is not valid {encoding} text.") from None
        try:
            data = loads_limited(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        if not isinstance(data, dict):
            raise ParseError(
                "The JSON body must be an object ({...}) with the fields this "
                f"endpoint documents, not {_kind(data)}."
            )
        return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
