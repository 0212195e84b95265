from __future__ import annotations

from django.urls import path

from planner.api import views

urlpatterns = [
    path("plans/", views.PlanListCreateApi.as_view(), name="api-plan-list"),
    path("plans/<str:pk>/", views.PlanDetailApi.as_view(), name="api-plan-detail"),
    path("capacity/", views.CapacityApi.as_view(), name="api-capacity"),
    path("finetune/", views.FinetuneApi.as_view(), name="api-finetune"),
    path(
        "catalog/models/",
        views.CatalogApi.as_view(kind="models"),
        name="api-catalog-models",
    ),
    path(
        "catalog/gpus/", views.CatalogApi.as_view(kind="gpus"), name="api-catalog-gpus"
    ),
    path(
        "catalog/formats/",
        views.CatalogApi.as_view(kind="formats"),
        name="api-catalog-formats",
    ),
    path(
        "catalog/api-prices/",
        views.CatalogApi.as_view(kind="api-prices"),
        name="api-catalog-api-prices",
    ),
]

# Serving recipes of plans, and their downloads (planner/api/recipes.py).
from planner.api.recipes import urlpatterns as recipe_urlpatterns  # noqa: E402

urlpatterns += recipe_urlpatterns
