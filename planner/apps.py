from __future__ import annotations

from django.apps import AppConfig


class PlannerConfig(AppConfig):
    """Plans: model specs, catalogs and projections of memory, speed and cost."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "planner"
