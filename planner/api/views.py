"""REST endpoints for plans and catalogs."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.schema import ErrorOutput
from planner import capacity_services, catalog_views, selectors, services
from planner.api.serializers import (
    CapacityCreateInput,
    CapacityReportOutput,
    CatalogApiPriceOutput,
    CatalogFormatOutput,
    CatalogGpuOutput,
    CatalogModelOutput,
    FinetuneCreateInput,
    FinetuneEstimateOutput,
    PlanCreateInput,
    PlanOutput,
    PlanReportOutput,
    PlanSummaryOutput,
)
from planner.models import Plan


class PlanListCreateApi(generics.ListAPIView[Plan]):
    """Compute a plan (and save it with ``save: true``), or list saved plans."""

    serializer_class = PlanSummaryOutput

    def get_queryset(self) -> QuerySet[Plan]:
        return selectors.plan_list_for_user(user=self.request.user)

    @extend_schema(
        request=PlanCreateInput,
        # 201 when saved (``save: true``, with its ``id``), 200 otherwise.
        responses={200: PlanReportOutput, 201: PlanReportOutput, 429: ErrorOutput},
        examples=[
            OpenApiExample(
                "Llama 3.1 8B on an L4, saved",
                request_only=True,
                value={
                    "model": "llama-3.1-8b",
                    "gpu": "l4",
                    "formats": ["gguf-Q4_K_M"],
                    "save": True,
                    "name": "8B on an L4",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        payload = PlanCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.to_plan_input()
        if not payload.validated_data.get("save"):
            # Only shown: the engine's memoised plan of this very request.
            try:
                text = services.plan_compute_json(data=data, user=request.user)
            except services.PlanInputError as exc:
                raise ValidationError({exc.field: [str(exc)]}) from None
            return _json_response(request, text)
        try:
            report = services.plan_compute(data=data, user=request.user)
        except services.PlanInputError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        body: dict[str, Any] = services.report_to_dict(report)
        try:
            plan = services.plan_save(
                user=request.user,
                name=payload.validated_data.get("name", ""),
                data=data,
                report=report,
            )
        except services.PlanLimitReached as exc:
            raise Throttled(detail=str(exc)) from None
        body["id"] = str(plan.pk)
        return Response(body, status=status.HTTP_201_CREATED)


def _json_response(request: Request, text: str) -> HttpResponse:
    """The plan's JSON text as DRF's JSONRenderer would write it, without parsing
    and writing it again (0.3 ms a plan); other renderers (the browsable API,
    ``; indent=``) get the parsed dict."""
    renderer = request.accepted_renderer
    if (
        type(renderer) is JSONRenderer
        and renderer.compact
        and not renderer.ensure_ascii
        and "indent" not in (request.accepted_media_type or "")
    ):
        # As JSONRenderer.render: U+2028/2029 escaped for JavaScript.
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return HttpResponse(text.encode(), content_type=renderer.media_type)
    return Response(json.loads(text))


class PlanDetailApi(APIView):
    """A saved plan (with the measured answers of searches run from it), or delete
    it."""

    @extend_schema(responses={200: PlanOutput})
    def get(self, request: Request, pk: str) -> Response:
        plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
        found = selectors.plan_measured_recommendations(plan=plan, user=request.user)
        return Response(
            PlanOutput(plan, context={"measured_recommendations": found}).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: str) -> Response:
        plan = selectors.plan_get_for_user(user=request.user, plan_id=pk)
        plan.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class CatalogApi(APIView):
    """A catalog list: models, gpus, formats or api-prices (each entry has an ``id``)."""

    permission_classes = [AllowAny]
    kind = "models"

    def get(self, request: Request) -> Response:
        return Response(catalog_views.catalog_list(self.kind))


# One class per catalog, so that the schema says what each list holds.
@extend_schema_view(get=extend_schema(responses={200: CatalogModelOutput(many=True)}))
class CatalogModelsApi(CatalogApi):
    """The catalog's models, with their config and parameter counts."""

    kind = "models"


@extend_schema_view(get=extend_schema(responses={200: CatalogGpuOutput(many=True)}))
class CatalogGpusApi(CatalogApi):
    """The catalog's accelerators: memory, bandwidth, TFLOPS, prices."""

    kind = "gpus"


@extend_schema_view(get=extend_schema(responses={200: CatalogFormatOutput(many=True)}))
class CatalogFormatsApi(CatalogApi):
    """The weight formats a plan can size."""

    kind = "formats"


@extend_schema_view(
    get=extend_schema(responses={200: CatalogApiPriceOutput(many=True)})
)
class CatalogApiPricesApi(CatalogApi):
    """Hosted APIs' prices per million tokens."""

    kind = "api-prices"


class CapacityApi(APIView):
    """Search GPU types, counts and formats for the cheapest deployment of a traffic."""

    @extend_schema(
        request=CapacityCreateInput,
        responses={200: CapacityReportOutput},
        examples=[
            OpenApiExample(
                "70B at 2 requests/s, TTFT under 1 s, 30 tokens/s per user",
                request_only=True,
                value={
                    "model": "llama-3-70b",
                    "gpus": ["a100-80gb", "h100-sxm", "l40s"],
                    "requests_per_s": 2,
                    "prompt_tokens": 1000,
                    "output_tokens": 300,
                    "max_ttft_s": 1,
                    "min_tokens_per_s": 30,
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        payload = CapacityCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            report = capacity_services.capacity_compute(
                data=payload.to_capacity_input(), user=request.user
            )
        except services.PlanInputError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(capacity_services.capacity_report_body(report=report))


class FinetuneApi(APIView):
    """Fine-tuning memory per GPU, time per epoch and cost (full, LoRA, QLoRA)."""

    @extend_schema(
        request=FinetuneCreateInput,
        responses={200: FinetuneEstimateOutput},
    )
    def post(self, request: Request) -> Response:
        payload = FinetuneCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            est = capacity_services.finetune_compute(
                data=payload.to_finetune_input(), user=request.user
            )
        except services.PlanInputError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(est.to_dict())
