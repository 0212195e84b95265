"""Top-level routes: pages, the v1 API, its schema and docs, health, admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from frontend.health import healthz

api_v1 = [
    path("", include("quantjobs.api.urls")),
    path("", include("planner.api.urls")),
    path("", include("frontend.api_urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # Split: the page's script is a file of its own, as the CSP requires.
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="frontend/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    path("", include("frontend.urls")),
]

handler400 = "frontend.views.bad_request"
handler404 = "frontend.views.page_not_found"
handler500 = "frontend.views.server_error"
