from __future__ import annotations

from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Server-rendered pages, accounts and API tokens."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "frontend"
