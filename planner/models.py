"""Saved plans and comparisons."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Comparison(models.Model):
    """Plans made together (one model on several GPUs), saved and reopened as one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """A saved projection: the request a user made and the report it produced."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plans"
    )
    name = models.CharField(max_length=200)
    model_id = models.CharField(max_length=200)
    model_config = models.JSONField(default=dict, blank=True)
    request = models.JSONField(default=dict)
    report = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    comparison = models.ForeignKey(
        Comparison,
        on_delete=models.CASCADE,
        related_name="plans",
        null=True,
        blank=True,
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
