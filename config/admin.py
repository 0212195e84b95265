"""Shared admin base: operators look and search; the product's services do the writes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every field read-only, no add, no edit; delete only where a subclass allows it.

    Rows here own files and queue messages that only the services keep consistent,
    so the admin never writes them behind the services' back.
    """

    allow_delete = False
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) per page view is needless on big tables

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allow_delete and super().has_delete_permission(request, obj)
