"""Reads for plans, scoped to their owner."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse

from planner.engine.formats import parse_format
from planner.measurements import SearchFinding, search_findings_for_plan
from planner.models import Comparison, Plan
from planner.recipes import (
    Recipe,
    RecipeError,
    default_format,
    plan_formats,
    recipes_for_plan_result,
)


def get_owned(queryset: QuerySet[Any], pk: Any) -> Any:
    """The object of ``queryset`` (already scoped to its owner) with id ``pk``, or 404.

    404 for another user's object and for a malformed id alike: ids leak nothing.
    """
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc
    except Exception as exc:  # ValidationError for a malformed UUID
        if exc.__class__.__name__ == "ValidationError":
            raise Http404("Not found.") from exc
        raise


def plan_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Plan]:
    """The user's saved plans, newest first."""
    return Plan.objects.filter(user=user)


def plan_get_for_user(*, user: AbstractBaseUser, plan_id: Any) -> Plan:
    """One of the user's plans, or 404."""
    return get_owned(plan_list_for_user(user=user), plan_id)


def plan_get(*, plan_id: Any) -> Plan:
    """Any user's plan, or 404: for the operator's CLI."""
    return get_owned(Plan.objects.all(), plan_id)


def plan_measured_recommendations(
    *, plan: Plan, user: AbstractBaseUser | None
) -> list[SearchFinding]:
    """The answers of finished accuracy-aware searches run from ``plan``, newest
    first (``user``'s searches; None: anyone's, for the operator's CLI). The page,
    the API and ``manage.py plan --plan`` show these, labelled measured."""
    return search_findings_for_plan(user=user, plan_id=plan.pk)


def comparison_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Comparison]:
    """The user's saved comparisons, newest first."""
    return Comparison.objects.filter(user=user).prefetch_related("plans")


def comparison_get_for_user(
    *, user: AbstractBaseUser, comparison_id: Any
) -> Comparison:
    """One of the user's comparisons, or 404."""
    return get_owned(comparison_list_for_user(user=user), comparison_id)


# Serving recipes of a plan (and, through quantjobs.recipes, of a job), with
# download URLs: what the API returns and the pages render.


def recipe_set_with_urls(
    *, fmt: str, formats: list[str], recipes: list[Recipe], route: str, pk: Any
) -> dict[str, Any]:
    """A recipe set as the API returns it: each recipe with the URL of its download
    (``route`` with ``pk`` and the recipe's id, for format ``fmt``)."""
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
    return recipe_set_with_urls(
        fmt=parse_format(fmt).id,
        formats=plan_formats(plan.report),
        recipes=recipes,
        route="api-plan-recipe-download",
        pk=plan.pk,
    )
