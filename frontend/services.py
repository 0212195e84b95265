"""Writes for accounts and API tokens."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from frontend.models import ApiToken, hash_token

MAX_TOKENS_PER_USER = 20


class TokenLimitReached(Exception):
    """The user already holds the most tokens allowed."""


class TokenInputError(ValueError):
    """A token request that cannot be honoured as given; the message says why."""


def api_token_create(
    *, user: AbstractBaseUser, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the raw value, which is shown only once."""
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenInputError("expires_at is in the past; choose a future time.")
    if ApiToken.objects.filter(user=user).count() >= MAX_TOKENS_PER_USER:
        raise TokenLimitReached(
            f"You already have {MAX_TOKENS_PER_USER} tokens; revoke one you no longer use."
        )
    raw = ApiToken.generate_raw()
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100] or "token",
        prefix=raw[:10],
        token_hash=hash_token(raw),
        expires_at=expires_at,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Revoke (delete) a token; requests using it fail from now on."""
    token.delete()
