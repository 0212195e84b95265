"""The pages' small POST commands (rename, delete) have one shape: call a service,
show what it refused or what it did as a message, redirect. It lives here once."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def command_redirect(
    request: HttpRequest,
    run: Callable[[], object],
    *,
    success: str | Callable[[], str],
    done: str,
    refused: tuple[type[Exception], ...] = (),
    failed: str | None = None,
) -> HttpResponse:
    """Run ``run``: if it raises one of ``refused``, show its message and redirect to
    ``failed`` (default ``done``); else show ``success`` (a callable is read after
    the run, for a message naming the new state) and redirect to ``done``."""
    try:
        run()
    except refused as exc:
        messages.error(request, str(exc))
        return redirect(failed or done)
    messages.success(request, success() if callable(success) else success)
    return redirect(done)
