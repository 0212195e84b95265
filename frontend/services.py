"""Writes for accounts and API tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from frontend.models import ApiToken, hash_token

MAX_TOKENS_PER_USER = 20


class TokenLimitReached(Exception):
    """The user already holds the most tokens allowed."""


def api_token_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the raw value, which is shown only once."""
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
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Revoke (delete) a token; requests using it fail from now on."""
    token.delete()
