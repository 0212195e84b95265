"""API tokens and workers over REST."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.schema import ErrorOutput, dataclass_serializer, stored_json
from frontend import services
from frontend.models import ApiToken
from planner.engine.device import WorkerFingerprint
from quantjobs.models import WorkerHeartbeat
from quantjobs.selectors import workers_recent


class TokenOutput(serializers.ModelSerializer[ApiToken]):
    """A token as listed: its prefix, never its value."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]


class TokenCreatedOutput(TokenOutput):
    """A new token, with its value: shown this once, stored only as a hash."""

    token = serializers.CharField()

    class Meta(TokenOutput.Meta):
        fields = [*TokenOutput.Meta.fields, "token"]


class TokenCreateInput(serializers.Serializer[Any]):
    """Name a new token."""

    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When the token stops working (UTC); empty: never.",
    )


class TokenListCreateApi(generics.ListAPIView[ApiToken]):
    """List your tokens, or create one (its value is in the response, once).

    Creating a token needs a signed-in session (the API tokens page, or this
    endpoint from it): a token cannot make tokens, so revoking a leaked one ends it.
    """

    serializer_class = TokenOutput
    throttle_scope = "token-create"

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(
        request=TokenCreateInput,
        responses={201: TokenCreatedOutput, 403: ErrorOutput, 429: ErrorOutput},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            raise PermissionDenied(
                "A token cannot create tokens: sign in and create it on the API tokens "
                "page, so that revoking a token also ends everything it could do."
            )
        payload = TokenCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            token, raw = services.api_token_create(
                user=request.user,
                name=payload.validated_data["name"],
                expires_at=payload.validated_data.get("expires_at"),
            )
        except services.TokenInputError as exc:
            raise ValidationError({"expires_at": [str(exc)]}) from None
        except services.TokenLimitReached as exc:
            raise Throttled(detail=str(exc)) from None
        return Response(
            {**TokenOutput(token).data, "token": raw}, status=status.HTTP_201_CREATED
        )


class TokenDetailApi(APIView):
    """Revoke a token."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        token = get_object_or_404(ApiToken, pk=pk, user=request.user)
        services.api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkerGpuOutput(serializers.Serializer[dict[str, Any]]):
    """A GPU the worker found."""

    name = serializers.CharField()
    memory_bytes = serializers.IntegerField()


WorkerFingerprintOutput = dataclass_serializer(WorkerFingerprint, keys_optional=True)


class WorkerCapabilitiesOutput(serializers.Serializer[dict[str, Any]]):
    """What the worker's host can run (``fingerprint`` once it has measured it)."""

    cpu_count = serializers.IntegerField()
    memory_bytes = serializers.IntegerField()
    gpus = WorkerGpuOutput(many=True)
    methods = serializers.ListField(child=serializers.CharField())
    fingerprint = stored_json(
        WorkerFingerprintOutput,
        required=False,
        help_text="CPU, cores a job uses, llama.cpp build, measured bandwidth; "
        "empty when the measurement failed.",
    )


class WorkerOutput(serializers.ModelSerializer[WorkerHeartbeat]):
    """A worker online: its queues and what its hardware can run."""

    queues = serializers.ListField(child=serializers.CharField())
    capabilities = stored_json(WorkerCapabilitiesOutput)

    class Meta:
        model = WorkerHeartbeat
        fields = ["hostname", "queues", "capabilities", "started_at", "last_seen_at"]


class WorkerListApi(generics.ListAPIView[WorkerHeartbeat]):
    """Workers that reported in the last two minutes (signed-in users only).

    Queues and capabilities tell a user why a job waits (the Jobs page shows the
    same); what is internal (database engine, broker errors) is in /healthz, for
    staff only.
    """

    serializer_class = WorkerOutput
    pagination_class = None

    def get_queryset(self) -> QuerySet[WorkerHeartbeat]:
        return workers_recent()
