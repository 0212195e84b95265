"""What a locked-out sign-in sees (django-axes' ``AXES_LOCKOUT_CALLABLE``).

After ``AXES_FAILURE_LIMIT`` wrong passwords for one account or from one address,
sign-in is refused, even with the right password, until the cool-off ends. The
page login and the admin login show it as a form error (status 429), the same form
the user typed into, so they know what happened and when to try again.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_message() -> str:
    """The sentence a locked-out user reads."""
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return (
        f"Too many failed sign-ins for this account or from this address "
        f"({settings.AXES_FAILURE_LIMIT} in a row): signing in is locked for "
        f"{minutes} minutes, even with the right password. Try again later, or ask an "
        "administrator to unlock it."
    )


def _form_with_error(form_class: Any, request: HttpRequest) -> Any:
    username = request.POST.get("username", "")[:150]
    form = form_class(request, initial={"username": username})
    # Unbound (nothing is authenticated again), but showing the lockout as its error.
    form._errors = ErrorDict({"__all__": ErrorList([lockout_message()])})
    return form


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """429 with the login form (page or admin) and the lockout as its error."""
    if request.path.startswith("/admin/"):
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "site_header": admin.site.site_header,
            "form": _form_with_error(AdminAuthenticationForm, request),
            "app_path": request.get_full_path(),
            "username": request.POST.get("username", "")[:150],
        }
        response = render(request, "admin/login.html", context, status=429)
    else:
        response = render(
            request,
            "registration/login.html",
            {
                "form": _form_with_error(AuthenticationForm, request),
                "next": request.POST.get("next", ""),
            },
            status=429,
        )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
