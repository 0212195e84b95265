"""Request-wide guards that run before sessions, authentication or any view.

``RequestBodyLimitMiddleware`` refuses a body over its route's cap from the declared
``Content-Length`` alone, so nothing is read, parsed or spooled to disk: 300 MiB
posted to the login page are answered 413 before Django touches them. Routes that
take files (model uploads, evaluation files) have their own, larger caps.

``PrivateCacheMiddleware`` marks every answer about one user's data (a signed-in
page, any API response) ``Cache-Control: private, no-store``, so neither a shared
proxy nor the browser's disk keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control

# (path pattern, setting that holds the file limit) for the routes that take files.
# A form around the file adds a little: the cap is the file limit plus this slack.
FORM_SLACK_BYTES = 1024 * 1024
_FILE_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/api/v1/uploads/$"), "QUANTPLAN_MAX_UPLOAD_BYTES"),
    # The uploads page's form, and the tus PATCHes of a resumable browser upload.
    (re.compile(r"^/uploads/$"), "QUANTPLAN_MAX_UPLOAD_BYTES"),
    (re.compile(r"^/uploads/tus/[^/]+/$"), "QUANTPLAN_MAX_UPLOAD_BYTES"),
    (re.compile(r"^/api/v1/jobs/$"), "QUANTPLAN_MAX_EVAL_TEXT_BYTES"),
    (re.compile(r"^/jobs/new/$"), "QUANTPLAN_MAX_EVAL_TEXT_BYTES"),
)


def body_limit_bytes(path: str) -> int:
    """The largest request body ``path`` accepts."""
    for pattern, setting in _FILE_ROUTES:
        if pattern.match(path):
            return int(getattr(settings, setting)) + FORM_SLACK_BYTES
    return int(settings.QUANTPLAN_MAX_REQUEST_BYTES)


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.1f} MiB"


class RequestBodyLimitMiddleware:
    """413 for a declared body larger than the route's cap, before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        limit = body_limit_bytes(request.path)
        try:
            size = int(declared) if len(declared) < 20 else limit + 1
        except ValueError:
            return self._refuse(
                request, 400, "The Content-Length header is not a number."
            )
        if size > limit:
            if limit == settings.QUANTPLAN_MAX_REQUEST_BYTES:
                advice = "send less (model files go to /api/v1/uploads/)"
            else:
                advice = (
                    f"files sent here are limited to {_mib(limit - FORM_SLACK_BYTES)}"
                )
            return self._refuse(
                request,
                413,
                f"The request body is {_mib(size)}; requests to this address are "
                f"limited to {_mib(limit)}: {advice}.",
            )
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, status: int, detail: str) -> HttpResponse:
        code = "too_large" if status == 413 else "bad_request"
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse(
                {"detail": detail, "code": code}, status=status
            )
        else:
            response = render(request, "400.html", {"detail": detail}, status=status)
        return response


class PrivateCacheMiddleware:
    """``Cache-Control: private, no-store`` on API answers and signed-in pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        private = request.path.startswith("/api/v1/") or bool(
            user is not None and user.is_authenticated
        )
        if private:
            patch_cache_control(response, private=True, no_store=True)
        return response
