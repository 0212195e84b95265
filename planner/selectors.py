"""Reads for plans, scoped to their owner."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.urls import reverse

from planner.engine.formats import parse_format
from planner.models import Comparison, Plan
from planner.recipes import (
    Recipe,
    RecipeError,
    default_format,
    plan_formats,
    recipes_for_plan_result,
)
from quantjobs import selectors as job_selectors
from quantjobs.recipes import job_recipes
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


# Serving recipes of a plan or a job, with download URLs: what the API returns and
# the pages render.


def _recipe_set(
    fmt: str, formats: list[str], recipes: list[Recipe], route: str, pk: Any
) -> dict[str, Any]:
    query = urlencode({"format": fmt})
    return {
        "format": fmt,
        "formats": formats,
        "recipes": [
            {
                **r,
                "download_url": reverse(
                    route, kwargs={"pk": str(pk), "recipe_id": r["id"]}
                )
                + f"?{query}",
            }
            for r in recipes
        ],
    }


def plan_recipe_set(
    *, user: AbstractBaseUser, plan_id: Any, fmt: str | None
) -> dict[str, Any]:
    """The recipes of one format of a user's plan (default: its recommendation), with
    download URLs: what the API returns and ``_recipes.html`` renders.

    Http404 for another user's plan; RecipeError for a format it cannot serve.
    """
    plan = plan_get_for_user(user=user, plan_id=plan_id)
    fmt = (fmt or "").strip()[:64] or default_format(plan.report)
    if fmt is None:
        raise RecipeError("This plan has no results to serve.")
    recipes = recipes_for_plan_result(
        plan.report, fmt, request=plan.request, source=f"Quantplan plan {plan.name}"
    )
    fmt = parse_format(fmt).id
    return _recipe_set(
        fmt, plan_formats(plan.report), recipes, "api-plan-recipe-download", plan.pk
    )


def job_recipe_set(
    *, user: AbstractBaseUser, job_id: Any, fmt: str | None
) -> dict[str, Any]:
    """The recipes of a user's job's artifact of ``fmt`` (default: its first), with
    download URLs. Http404 for another user's job; NoArtifactYet before it has a file;
    RecipeError for a format it has no file of.
    """
    job = job_selectors.job_get_for_user(user=user, job_id=job_id)
    found = job_recipes(job=job, fmt=(fmt or "").strip()[:64] or None)
    return _recipe_set(
        found.format, found.formats, found.recipes, "api-job-recipe-download", job.pk
    )
