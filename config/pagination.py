"""Pagination with bounds: ``?limit=`` and ``?offset=`` of any size are 400s, not 500s."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000


class BadPageParameter(APIException):
    """A ``limit`` or ``offset`` out of bounds: 400 with what to send instead."""

    status_code = 400
    default_code = "invalid_page_parameter"


def _bounded(raw: str, *, name: str, maximum: int) -> int:
    text = raw.strip()
    if not text.isdigit() or len(text) > 12 or int(text) > maximum:
        raise BadPageParameter(f"{name} must be a whole number from 0 to {maximum:,}.")
    return int(text)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """DRF's limit/offset pagination, with ``limit`` at most 500 and a sane offset."""

    max_limit = MAX_LIMIT

    def get_limit(self, request: Any) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None or raw == "":
            return self.default_limit
        limit = _bounded(raw, name=self.limit_query_param, maximum=MAX_LIMIT)
        return limit or self.default_limit

    def get_offset(self, request: Any) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None or raw == "":
            return 0
        return _bounded(raw, name=self.offset_query_param, maximum=MAX_OFFSET)
