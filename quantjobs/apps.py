from __future__ import annotations

from django.apps import AppConfig


class QuantjobsConfig(AppConfig):
    """Jobs that quantize and benchmark models on Celery workers, and their artifacts."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "quantjobs"

    def ready(self) -> None:
        # The planner plans uploads and local files through these readers; it never
        # imports quantjobs (docs/architecture.md).
        from quantjobs.plan_sources import plan_sources_register

        plan_sources_register()
