from __future__ import annotations

from django.apps import AppConfig


class QuantjobsConfig(AppConfig):
    """Jobs that quantize and benchmark models on Celery workers, and their artifacts."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "quantjobs"
