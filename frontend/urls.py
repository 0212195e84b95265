from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from frontend import capacity_views, job_views, plan_views, upload_views, views

urlpatterns = [
    path("", plan_views.plan_page, name="plan"),
    re_path(r"^plan\.(?P<fmt>json|csv)$", plan_views.plan_export, name="plan-export"),
    path("plans/<str:pk>/", plan_views.plan_detail, name="plan-detail"),
    re_path(
        r"^plans/(?P<pk>[^/]+)/plan\.(?P<fmt>json|csv)$",
        plan_views.plan_detail_export,
        name="plan-detail-export",
    ),
    path("plans/<str:pk>/rename/", plan_views.plan_rename, name="plan-rename"),
    path("plans/<str:pk>/delete/", plan_views.plan_delete, name="plan-delete"),
    path("plans/", plan_views.plan_list, name="plan-list"),
    path("compare/", plan_views.plan_compare, name="plan-compare"),
    path(
        "comparisons/<str:pk>/",
        plan_views.comparison_detail,
        name="comparison-detail",
    ),
    re_path(
        r"^comparisons/(?P<pk>[^/]+)/plan\.(?P<fmt>json|csv)$",
        plan_views.comparison_export,
        name="comparison-export",
    ),
    path(
        "comparisons/<str:pk>/rename/",
        plan_views.comparison_rename,
        name="comparison-rename",
    ),
    path(
        "comparisons/<str:pk>/delete/",
        plan_views.comparison_delete,
        name="comparison-delete",
    ),
    path("capacity/", capacity_views.capacity_page, name="capacity"),
    path("finetune/", capacity_views.finetune_page, name="finetune"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/compare/", job_views.job_compare, name="job-compare"),
    path("jobs/<str:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<str:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<str:pk>/live/", job_views.job_live, name="job-live"),
    path("jobs/<str:pk>/log.txt", job_views.job_log_download, name="job-log"),
    path("jobs/<str:pk>/rename/", job_views.job_rename, name="job-rename"),
    path("jobs/<str:pk>/delete/", job_views.job_delete, name="job-delete"),
    path("jobs/<str:pk>/rerun/", views.job_rerun, name="job-rerun"),
    path("artifacts/", views.artifact_list, name="artifact-list"),
    path(
        "artifacts/<str:pk>/download/",
        views.artifact_download,
        name="artifact-download",
    ),
    path(
        "artifacts/<str:pk>/rename/",
        job_views.artifact_rename,
        name="artifact-rename",
    ),
    path(
        "artifacts/<str:pk>/delete/",
        job_views.artifact_delete,
        name="artifact-delete",
    ),
    path("uploads/", upload_views.upload_list, name="upload-list"),
    path("uploads/tus/", upload_views.tus_collection, name="upload-tus"),
    path("uploads/tus/<str:pk>/", upload_views.tus_detail, name="upload-tus-detail"),
    path("uploads/<str:pk>/rename/", upload_views.upload_rename, name="upload-rename"),
    path("uploads/<str:pk>/delete/", upload_views.upload_delete, name="upload-delete"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("api/", views.api_page, name="api-page"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
