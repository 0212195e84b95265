"""Reads for plans, scoped to their owner."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from planner.models import Comparison, CustomGpu, Plan
from quantjobs.selectors import _get_owned


def plan_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Plan]:
    """The user's saved plans, newest first."""
    return Plan.objects.filter(user=user)


def plan_get_for_user(*, user: AbstractBaseUser, plan_id: Any) -> Plan:
    """One of the user's plans, or 404."""
    return _get_owned(plan_list_for_user(user=user), plan_id)


def comparison_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Comparison]:
    """The user's saved comparisons, newest first."""
    return Comparison.objects.filter(user=user).prefetch_related("plans")


def comparison_get_for_user(
    *, user: AbstractBaseUser, comparison_id: Any
) -> Comparison:
    """One of the user's comparisons, or 404."""
    return _get_owned(comparison_list_for_user(user=user), comparison_id)


def custom_gpu_list_for_user(*, user: AbstractBaseUser) -> QuerySet[CustomGpu]:
    """GPUs the user defined."""
    return CustomGpu.objects.filter(user=user)
