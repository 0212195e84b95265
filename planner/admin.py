"""Operators' view of saved plans (read-only; plans may be deleted)."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from planner.models import Plan


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    """Saved plans; search by id, name, model or user. A plan owns no files."""

    allow_delete = True
    list_display = ("id", "user", "name", "model_id", "created_at")
    list_filter = ("created_at",)
    search_fields = ("=id", "name", "model_id", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
