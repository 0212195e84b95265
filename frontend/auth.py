"""DRF authentication by ``Authorization: Bearer qp_...`` (or ``Token qp_...``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from frontend.models import ApiToken, hash_token

# last_used_at is a hint ("used in the last minute"), not an audit log: writing it on
# every request serialised the API behind the database's write lock.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate API clients with a token created on the API tokens page."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if (
            not header
            or header[0].lower().decode(errors="replace") not in self.keywords
        ):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Authorization: Bearer <token>'."
            )
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "The token has invalid characters."
            ) from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(token_hash=hash_token(raw))
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked token: create a new one on the API tokens page."
            )
        now = timezone.now()
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                f"This token expired at {token.expires_at:%Y-%m-%d %H:%M} UTC: create a "
                "new one on the API tokens page."
            )
        stale = now - LAST_USED_RESOLUTION
        if token.last_used_at is None or token.last_used_at < stale:
            # Conditional: of many concurrent requests, one writes; none waits on it.
            ApiToken.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
            ).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
except ImportError:  # pragma: no cover - drf-spectacular is a hard dependency
    pass
else:

    class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
        """Describe token authentication in the OpenAPI schema."""

        target_class = "frontend.auth.ApiTokenAuthentication"
        name = "ApiToken"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from the API tokens page.",
            }
