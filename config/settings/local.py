"""Development settings: debug on, a fixed insecure key, everything on this machine."""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="insecure-local-development-key-change-me"
)
