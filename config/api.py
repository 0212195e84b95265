"""API-wide error handling: every error a client can cause is a 4xx JSON body."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from quantjobs.broker import BrokerUnavailable

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus a 503 with a message when the job broker is down."""
    if isinstance(exc, BrokerUnavailable):
        return Response(
            {"detail": str(exc), "code": "broker_unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "30"},
        )
    scope = getattr(context.get("view"), "throttle_scope", "")
    if isinstance(exc, Throttled) and exc.wait is not None and scope:
        # The rate limit's own refusal (a quota's has its own message): say which.
        rate = settings.QUANTPLAN_RATES.get(scope, "")
        exc.detail = Throttled(
            detail=f"Too many requests of this kind ({scope}, limit {rate}); "
            f"try again in {max(1, round(exc.wait))} s.",
        ).detail
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        detail = response.data.get("detail")
        if detail is not None:
            response.data.setdefault("code", getattr(detail, "code", "error"))
    return response
