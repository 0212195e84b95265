from __future__ import annotations

from django.urls import path

from frontend import api

urlpatterns = [
    path("tokens/", api.TokenListCreateApi.as_view(), name="api-token-list"),
    path("tokens/<int:pk>/", api.TokenDetailApi.as_view(), name="api-token-detail"),
    path("workers/", api.WorkerListApi.as_view(), name="api-worker-list"),
]
