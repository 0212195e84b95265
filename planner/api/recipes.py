"""Serving recipes over REST for a saved plan's format.

``GET plans/{id}/recipes/?format=FMT`` lists the recipes (owner only, 404 otherwise);
``…/recipes/{recipe_id}/download/`` returns one as an attachment. The routes are
``urlpatterns`` below, included by ``planner/api/urls.py``. A job's recipes
(``jobs/{id}/recipes/``) are served by ``quantjobs/api/recipes.py`` with the
serializers and helpers defined here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import Http404, HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from planner.recipes import RecipeError
from planner.selectors import plan_recipe_set

FORMAT_PARAM = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    description="Format to serve, e.g. gguf-Q4_K_M (default: the plan's recommendation, "
    "or the job's first artifact).",
)


class RecipeOutput(serializers.Serializer[dict[str, Any]]):
    """One recipe: a file to copy or download."""

    id = serializers.CharField()
    title = serializers.CharField()
    filename = serializers.CharField()
    media_type = serializers.CharField()
    content = serializers.CharField()
    download_url = serializers.CharField()


class RecipeSetOutput(serializers.Serializer[dict[str, Any]]):
    """The recipes for one format, and the formats one could ask for instead."""

    format = serializers.CharField()
    formats = serializers.ListField(child=serializers.CharField())
    recipes = RecipeOutput(many=True)


class WeightFormatNegotiation(DefaultContentNegotiation):
    """Negotiation that leaves ``?format=`` alone: here it names a weight format,
    not DRF's renderer override (which would answer 404 to ``?format=gguf-Q4_K_M``)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


def format_param(request: Request) -> str | None:
    """The weight format a recipes request asks for (``?format=``), if any."""
    value = request.query_params.get("format")
    return value.strip()[:64] if value and value.strip() else None


def _api_recipe_set(request: Request, pk: str) -> dict[str, Any]:
    try:
        return plan_recipe_set(user=request.user, plan_id=pk, fmt=format_param(request))
    except RecipeError as exc:
        raise ValidationError({"format": [str(exc)]}) from None


def recipe_download(recipe_set: dict[str, Any], recipe_id: str) -> HttpResponse:
    """One recipe of ``recipe_set`` as an attachment; 404 naming the ids there are."""
    recipes = recipe_set["recipes"]
    recipe = next((r for r in recipes if r["id"] == recipe_id), None)
    if recipe is None:
        known = ", ".join(r["id"] for r in recipes)
        raise Http404(
            f"No recipe {recipe_id[:40]!r} for this format; there are: {known}."
        )
    response = HttpResponse(
        recipe["content"], content_type=f"{recipe['media_type']}; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{recipe["filename"]}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class PlanRecipesApi(APIView):
    """Commands and manifests that serve one format of a saved plan."""

    content_negotiation_class = WeightFormatNegotiation

    @extend_schema(parameters=[FORMAT_PARAM], responses={200: RecipeSetOutput})
    def get(self, request: Request, pk: str) -> Response:
        return Response(RecipeSetOutput(_api_recipe_set(request, pk)).data)


class PlanRecipeDownloadApi(APIView):
    """One plan recipe as a file."""

    content_negotiation_class = WeightFormatNegotiation

    @extend_schema(
        parameters=[FORMAT_PARAM],
        responses={(200, "text/plain"): OpenApiResponse(response=OpenApiTypes.STR)},
    )
    def get(self, request: Request, pk: str, recipe_id: str) -> HttpResponse:
        return recipe_download(_api_recipe_set(request, pk), recipe_id)


urlpatterns = [
    path("plans/<str:pk>/recipes/", PlanRecipesApi.as_view(), name="api-plan-recipes"),
    path(
        "plans/<str:pk>/recipes/<str:recipe_id>/download/",
        PlanRecipeDownloadApi.as_view(),
        name="api-plan-recipe-download",
    ),
]
