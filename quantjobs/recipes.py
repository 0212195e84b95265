"""Serving recipes for a job's artifact, with its plan's numbers when it has a plan.

A selector: the API (``quantjobs/api/recipes.py``) and the job page read a job's
recipes here, never through the planner (which does not import quantjobs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from planner.engine.catalog import CatalogError, get_model
from planner.engine.formats import FormatError, parse_format
from planner.recipes import (
    Recipe,
    RecipeError,
    plan_formats,
    recipes_for_artifact,
    recipes_for_plan_result,
)
from planner.selectors import recipe_set_with_urls
from quantjobs.models import Artifact, Job
from quantjobs.selectors import job_get_for_user, job_model

SERVE_CONTEXT_TOKENS = 4096  # without a plan: a common serving context


class NoArtifactYet(RecipeError):
    """The job has produced no file to serve (yet)."""


@dataclass(frozen=True)
class JobRecipes:
    """The recipes for one of a job's artifacts, and the formats it could choose."""

    format: str
    formats: list[str]
    artifact: Artifact
    recipes: list[Recipe]


def _canonical(fmt: str) -> str:
    try:
        return parse_format(fmt).id
    except FormatError:
        return fmt


def _serve_context(job: Job) -> int:
    try:
        trained = get_model(job.model_id).spec.max_position_embeddings
    except CatalogError:
        return SERVE_CONTEXT_TOKENS
    return min(SERVE_CONTEXT_TOKENS, trained) if trained else SERVE_CONTEXT_TOKENS


def job_recipes(*, job: Job, fmt: str | None = None) -> JobRecipes:
    """Recipes that serve the job's artifact of ``fmt`` (default: its first format)."""
    order = {_canonical(f): i for i, f in enumerate(job.formats or [])}
    artifacts = sorted(
        job.artifacts.all(), key=lambda a: order.get(_canonical(a.format), 99)
    )
    if not artifacts:
        raise NoArtifactYet(
            "This job has no finished file yet; recipes appear once it has succeeded."
        )
    formats = list(dict.fromkeys(a.format for a in artifacts))
    if fmt:
        wanted = _canonical(fmt)
        artifact = next((a for a in artifacts if _canonical(a.format) == wanted), None)
        if artifact is None:
            raise RecipeError(
                f"This job has no {fmt[:40]} file; choose one of: {', '.join(formats)}"
            )
    else:
        artifact = artifacts[0]
    model = job_model(job=job)
    source = f"Quantplan job {job.name or job.pk}, quantized from {model.name}"
    plan = job.plan if job.plan and job.plan.user_id == job.user_id else None
    if model.stand_in_for:
        # The plan's GPUs, memory and names are those of another model.
        source += f" (a stand-in for {model.stand_in_for}; not that model)"
    elif plan is not None and not model.same_as_plan:
        source += f" (linked to plan {plan.name}, for {model.plan_model})"
    if (
        plan is not None
        and model.same_as_plan
        and _canonical(artifact.format)
        in {_canonical(f) for f in plan_formats(plan.report)}
    ):
        recipes = recipes_for_plan_result(
            plan.report,
            artifact.format,
            request=plan.request,
            model_file=artifact.filename,
            source=f"{source}, planned in {plan.name}",
        )
    else:
        recipes = recipes_for_artifact(
            filename=artifact.filename,
            fmt=artifact.format,
            model_name=model.ident,
            model_label=model.name,
            context_tokens=_serve_context(job),
            source=source,
        )
    return JobRecipes(
        format=artifact.format, formats=formats, artifact=artifact, recipes=recipes
    )


def job_recipe_set(
    *, user: AbstractBaseUser, job_id: Any, fmt: str | None
) -> dict[str, Any]:
    """The recipes of a user's job's artifact of ``fmt`` (default: its first), with
    download URLs. Http404 for another user's job; NoArtifactYet before it has a file;
    RecipeError for a format it has no file of.
    """
    job = job_get_for_user(user=user, job_id=job_id)
    found = job_recipes(job=job, fmt=(fmt or "").strip()[:64] or None)
    return recipe_set_with_urls(
        fmt=found.format,
        formats=found.formats,
        recipes=found.recipes,
        route="api-job-recipe-download",
        pk=job.pk,
    )
