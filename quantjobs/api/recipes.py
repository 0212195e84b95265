"""Serving recipes over REST for a finished job's artifact.

``GET jobs/{id}/recipes/?format=FMT`` lists the recipes (owner only, 404 otherwise;
409 before the job has a file); ``…/recipes/{recipe_id}/download/`` returns one as
an attachment (routes in ``quantjobs/api/urls.py``). The answer has the shape of a
plan's recipes, so the serializers and the download come from
``planner/api/recipes.py`` (quantjobs may use the planner, never the other way).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.schema import ErrorOutput
from planner.api.recipes import (
    FORMAT_PARAM,
    RecipeSetOutput,
    WeightFormatNegotiation,
    format_param,
    recipe_download,
)
from planner.recipes import RecipeError
from quantjobs.recipes import NoArtifactYet, job_recipe_set


class NoArtifact(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_artifact"


def _api_recipe_set(request: Request, pk: str) -> dict[str, Any]:
    try:
        return job_recipe_set(user=request.user, job_id=pk, fmt=format_param(request))
    except NoArtifactYet as exc:
        raise NoArtifact(str(exc)) from None
    except RecipeError as exc:
        raise ValidationError({"format": [str(exc)]}) from None


class JobRecipesApi(APIView):
    """Commands and manifests that serve a finished job's artifact."""

    content_negotiation_class = WeightFormatNegotiation

    @extend_schema(
        parameters=[FORMAT_PARAM], responses={200: RecipeSetOutput, 409: ErrorOutput}
    )
    def get(self, request: Request, pk: str) -> Response:
        return Response(RecipeSetOutput(_api_recipe_set(request, pk)).data)


class JobRecipeDownloadApi(APIView):
    """One job recipe as a file."""

    content_negotiation_class = WeightFormatNegotiation

    @extend_schema(
        parameters=[FORMAT_PARAM],
        responses={
            (200, "text/plain"): OpenApiResponse(response=OpenApiTypes.STR),
            409: ErrorOutput,  # the job has no file yet
        },
    )
    def get(self, request: Request, pk: str, recipe_id: str) -> HttpResponse:
        return recipe_download(_api_recipe_set(request, pk), recipe_id)
