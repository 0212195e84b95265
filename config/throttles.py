"""Rate limits shared by the API (DRF throttles) and the pages (form errors).

A scope (``job-create``, ``token-create``, ``signup``) counts a user's requests, or an
address's when nobody is signed in, in the default cache; its rate is in
``settings.QUANTPLAN_RATES``. The API and the page of one action share the count.
A cache that cannot be reached lets requests through (and logs it): a rate limit
must not turn a Redis hiccup into an outage.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class ScopeThrottle(SimpleRateThrottle):
    """One scope's counter, keyed by user id or, for anonymous requests, address."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def get_rate(self) -> str | None:
        return settings.QUANTPLAN_RATES.get(self.scope)

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return bool(super().allow_request(request, view))
        except Exception:
            logger.warning(
                "rate limit %s: cache unreachable", self.scope, exc_info=True
            )
            return True


def page_wait_s(request: HttpRequest, scope: str) -> int | None:
    """Count one page request in ``scope``; seconds to wait if it is over the rate."""
    throttle = ScopeThrottle(scope)
    if throttle.allow_request(request, None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def wait_message(wait_s: int, action: str) -> str:
    """What a refused user reads: the action, the limit and when to try again."""
    minutes = math.ceil(wait_s / 60)
    when = f"{wait_s} s" if wait_s < 120 else f"{minutes} minutes"
    return f"Too many {action} from you; try again in {when}."


class WriteScopeThrottle(ScopeThrottle):
    """DRF throttle for a view's writes only (``throttle_scope`` on the view)."""

    def __init__(self) -> None:  # DRF builds throttles without arguments
        self.scope = ""
        self.rate = None

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        self.scope = getattr(view, "throttle_scope", "")
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


# Where a request carries no usable address (a login made in code, a malformed
# X-Forwarded-For), the lockout counts it under this one address: django-axes
# stores the address in a GenericIPAddressField, which PostgreSQL's inet column
# refuses for any text that is not an address ("unknown" failed every login there).
NO_ADDRESS = "0.0.0.0"


def client_ip(request: Any) -> str:
    """The client's address as every limit counts it (DRF's rule with NUM_PROXIES)."""
    ident = str(ScopeThrottle("signup").get_ident(request) or "")
    try:
        return str(ipaddress.ip_address(ident))
    except ValueError:
        return NO_ADDRESS
