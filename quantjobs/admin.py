"""Operators' view of jobs, artifacts, results, uploads and workers (read-only)."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from quantjobs.models import Artifact, Job, JobResult, ModelUpload, WorkerHeartbeat


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Jobs by status, method, queue and worker; search by id, user, name or source."""

    list_display = (
        "id",
        "user",
        "name",
        "method",
        "status",
        "progress",
        "queue",
        "worker",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "method", "queue", "source_kind", "created_at")
    search_fields = (
        "=id",
        "user__username",
        "name",
        "source_ref",
        "model_id",
        "worker",
        "error",
    )
    date_hierarchy = "created_at"
    list_select_related = ("user",)


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    """Stored files with their size and sha256; search by id, sha256, job or user."""

    list_display = (
        "id",
        "user",
        "job",
        "format",
        "filename",
        "size_bytes",
        "created_at",
    )
    list_filter = ("format", "created_at")
    search_fields = ("=id", "=sha256", "=job__id", "user__username", "filename")
    list_select_related = ("user", "job")


@admin.register(JobResult)
class JobResultAdmin(ReadOnlyAdmin):
    """Each format's measurements beside its projection."""

    list_display = ("job", "format", "artifact", "created_at")
    list_filter = ("format",)
    search_fields = ("=job__id", "format", "job__user__username")
    list_select_related = ("job", "artifact")


@admin.register(ModelUpload)
class ModelUploadAdmin(ReadOnlyAdmin):
    """Uploaded models; search by id, sha256, file name or user."""

    list_display = ("id", "user", "filename", "kind", "size_bytes", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("=id", "=sha256", "filename", "user__username", "model_id")
    list_select_related = ("user",)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    """Workers that reported, with their queues and last heartbeat."""

    list_display = ("hostname", "queues", "started_at", "last_seen_at")
    search_fields = ("hostname",)
