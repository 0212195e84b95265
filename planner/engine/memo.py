"""``plan_json()``: a plan's JSON text, memoised per request (issue 14, point 7).

The web answers the same plans over and over, and ``plan()`` is pure: each
distinct request is planned once (a bounded LRU) and kept as text, which no
caller can change.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from .plan import plan
from .request import PlanRequest

__all__ = ["PLAN_CACHE_SIZE", "plan_json"]

PLAN_CACHE_SIZE = 256  # distinct requests whose reports are kept (each ~10 KB of JSON)


@dataclass(frozen=True)
class _Keyed:
    """A request with a hashable key of everything ``plan()`` reads from it."""

    key: Hashable
    request: PlanRequest = field(compare=False, hash=False)


def _request_key(request: PlanRequest) -> Hashable:
    """Every field of the request, hashable; TypeError when one cannot be."""
    key = tuple(
        json.dumps(value, sort_keys=True, default=repr)
        if f.name == "measured"
        else tuple(value)
        if isinstance(value, list | tuple)
        else value
        for f in fields(request)
        for value in (getattr(request, f.name),)
    )
    hash(key)
    return key


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _plan_json(keyed: _Keyed) -> str:
    """The request's plan as JSON text (the memoised step)."""
    return _dumps(plan(keyed.request).to_dict())


def _dumps(report: dict[str, Any]) -> str:
    """Compact UTF-8 JSON, as Django REST framework writes it by default."""
    return json.dumps(report, ensure_ascii=False, separators=(",", ":"))


def plan_json(request: PlanRequest) -> str:
    """``plan(request).to_dict()`` as compact JSON text, memoised per request.

    The ledger's measurements and calibrations are part of the request: a new
    measurement is a new key, and the next plan shows it.
    """
    try:
        keyed = _Keyed(_request_key(request), request)
    except TypeError:  # a request field that cannot be hashed: plan it afresh
        return _dumps(plan(request).to_dict())
    return _plan_json(keyed)
