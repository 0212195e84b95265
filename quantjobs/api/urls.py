from __future__ import annotations

from django.urls import path

from quantjobs.api import recipes, views

urlpatterns = [
    path("jobs/", views.JobListCreateApi.as_view(), name="api-job-list"),
    path("jobs/<str:pk>/", views.JobDetailApi.as_view(), name="api-job-detail"),
    path(
        "jobs/<str:pk>/results/<str:fmt>/answers.jsonl",
        views.JobResultAnswersApi.as_view(),
        name="api-job-result-answers",
    ),
    path("jobs/<str:pk>/cancel/", views.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<str:pk>/rerun/", views.JobRerunApi.as_view(), name="api-job-rerun"),
    path(
        "jobs/<str:pk>/recipes/",
        recipes.JobRecipesApi.as_view(),
        name="api-job-recipes",
    ),
    path(
        "jobs/<str:pk>/recipes/<str:recipe_id>/download/",
        recipes.JobRecipeDownloadApi.as_view(),
        name="api-job-recipe-download",
    ),
    path("uploads/", views.UploadListCreateApi.as_view(), name="api-upload-list"),
    path(
        "uploads/<str:pk>/", views.UploadDetailApi.as_view(), name="api-upload-detail"
    ),
    path("artifacts/", views.ArtifactListApi.as_view(), name="api-artifact-list"),
    path("measurements/", views.MeasurementsApi.as_view(), name="api-measurements"),
    path(
        "artifacts/<str:pk>/download/",
        views.ArtifactDownloadApi.as_view(),
        name="api-artifact-download",
    ),
]
