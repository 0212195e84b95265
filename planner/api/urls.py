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
        views.CatalogModelsApi.as_view(),
        name="api-catalog-models",
    ),
    path("catalog/gpus/", views.CatalogGpusApi.as_view(), name="api-catalog-gpus"),
    path(
        "catalog/formats/",
        views.CatalogFormatsApi.as_view(),
        name="api-catalog-formats",
    ),
    path(
        "catalog/api-prices/",
        views.CatalogApiPricesApi.as_view(),
        name="api-catalog-api-prices",
    ),
]

# Serving recipes of plans, and their downloads (planner/api/recipes.py).
from planner.api.recipes import urlpatterns as recipe_urlpatterns  # noqa: E402

urlpatterns += recipe_urlpatterns
