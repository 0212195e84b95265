"""Operators' view of API tokens: never their value; revoking one is allowed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin import ReadOnlyAdmin
from frontend import services
from frontend.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens by owner, with prefix, last use and expiry; delete = revoke."""

    allow_delete = True
    list_display = (
        "name",
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = ("created_at", "expires_at")
    search_fields = ("name", "=prefix", "user__username")
    exclude = ("token_hash",)
    list_select_related = ("user",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            f for f in super().get_readonly_fields(request, obj) if f != "token_hash"
        ]

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        services.api_token_revoke(token=obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[ApiToken]
    ) -> None:
        for token in queryset:
            services.api_token_revoke(token=token)
