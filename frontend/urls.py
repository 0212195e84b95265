from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import capacity_views, plan_views, views

urlpatterns = [
    path("", plan_views.plan_page, name="plan"),
    path("plans/<str:pk>/", plan_views.plan_detail, name="plan-detail"),
    path("plans/", plan_views.plan_list, name="plan-list"),
    path("compare/", plan_views.plan_compare, name="plan-compare"),
    path("capacity/", capacity_views.capacity_page, name="capacity"),
    path("finetune/", capacity_views.finetune_page, name="finetune"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/<str:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<str:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<str:pk>/rerun/", views.job_rerun, name="job-rerun"),
    path("artifacts/", views.artifact_list, name="artifact-list"),
    path(
        "artifacts/<str:pk>/download/",
        views.artifact_download,
        name="artifact-download",
    ),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("api/", views.api_page, name="api-page"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
