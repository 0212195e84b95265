"""REST endpoints for jobs and artifacts; each calls one service or selector."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.parsers import LimitedJSONParser
from config.schema import ErrorOutput
from quantjobs import selectors, services
from quantjobs.api.serializers import (
    ArtifactOutput,
    JobCreateInput,
    JobOutput,
    UploadCreateInput,
    UploadOutput,
)
from quantjobs.downloads import answers_jsonl_response, artifact_response
from quantjobs.models import Artifact, Job
from quantjobs.uploads import (
    UploadError,
    calibration_text_store,
    model_upload_delete,
    model_upload_store,
)


def create_job_from_input(request: Request, data: dict[str, Any]) -> Job:
    """Create the job (the service stores the evaluation file once it is accepted)."""
    user = request.user
    calibration: dict[str, str] = {}
    if data.get("calibration_file"):
        try:
            calib_path, calib_name = calibration_text_store(
                user_id=user.pk, uploaded=data["calibration_file"]
            )
        except UploadError as exc:
            raise ValidationError({"calibration_file": [str(exc)]}) from None
        calibration = {
            "calibration_text_path": calib_path,
            "calibration_text_name": calib_name,
        }
    options = {
        key: data[key]
        for key in (
            "context_tokens",
            "max_chunks",
            "timeout_s",
            "bench_prompt_tokens",
            "bench_generation_tokens",
            "bench_repetitions",
            "chat_template",
            "imatrix",
        )
        if data.get(key) is not None
    }
    options.update(calibration)
    try:
        return services.job_create(
            user=request.user,
            method=data["method"],
            formats=data.get("formats") or [],
            source_kind=data.get("source_kind") or Job.SourceKind.SAMPLE,
            source_ref=data.get("source_ref") or "",
            source_revision=data.get("source_revision") or "",
            name=data.get("name") or "",
            eval_file=data.get("eval_file") or None,
            options=options,
            plan_id=data.get("plan"),
            search_metric=data.get("search_metric") or "",
            search_max=data.get("search_max"),
        )
    except services.JobInputError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from None
    except services.QuotaExceeded as exc:
        raise Throttled(detail=str(exc)) from None


class JobListCreateApi(generics.ListAPIView[Job]):
    """List your jobs, or create one (JSON, or multipart with an evaluation file)."""

    serializer_class = JobOutput
    parser_classes = [LimitedJSONParser, MultiPartParser, FormParser]
    throttle_scope = "job-create"

    def get_queryset(self) -> QuerySet[Job]:
        status_filter = self.request.query_params.get("status")
        return selectors.job_list_for_user(user=self.request.user, status=status_filter)

    def get_serializer_context(self) -> dict[str, Any]:
        return {
            **super().get_serializer_context(),
            "queues_without_workers": selectors.queues_without_workers(),
        }

    @extend_schema(
        request=JobCreateInput,
        responses={201: JobOutput, 429: ErrorOutput, 503: ErrorOutput},
        examples=[
            OpenApiExample(
                "GGUF of the bundled sample",
                request_only=True,
                value={
                    "method": "gguf",
                    "formats": ["gguf-Q4_K_M"],
                    "source_kind": "sample",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        payload = JobCreateInput(data=_plain_data(request.data))
        payload.is_valid(raise_exception=True)
        job = create_job_from_input(request, dict(payload.validated_data))
        body = JobOutput(job, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)


def _plain_data(data: Any) -> dict[str, Any]:
    """A form post's fields as a dict (never a copy of its files: a spooled upload
    cannot be copied); JSON bodies are dicts already (the parser insists)."""
    if not hasattr(data, "getlist"):
        return dict(data)
    plain: dict[str, Any] = {}
    for key in data:
        values = data.getlist(key)
        plain[key] = _split_formats(values) if key == "formats" else values[-1]
    return plain


def _split_formats(values: list[str]) -> list[str]:
    # Form posts may send "gguf-Q8_0,gguf-Q4_K_M" in one field.
    return [
        part.strip()
        for value in values
        for part in str(value).split(",")
        if part.strip()
    ]


class JobDetailApi(generics.RetrieveAPIView[Job]):
    """One of your jobs, with its progress, log and results."""

    serializer_class = JobOutput

    def get_object(self) -> Job:
        return selectors.job_get_for_user(
            user=self.request.user, job_id=self.kwargs["pk"]
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {
            **super().get_serializer_context(),
            "queues_without_workers": selectors.queues_without_workers(),
        }


class JobResultAnswersApi(APIView):
    """Per-question outputs of one format (and of the reference), as JSONL."""

    @extend_schema(
        responses={(200, "application/x-ndjson"): OpenApiResponse(description="JSONL")}
    )
    def get(self, request: Request, pk: str, fmt: str) -> HttpResponse:
        result = selectors.job_result_get_for_user(
            user=request.user, job_id=pk, fmt=fmt
        )
        return answers_jsonl_response(result)


class JobCancelApi(APIView):
    """Cancel a queued or running job."""

    @extend_schema(request=None, responses={200: JobOutput, 400: ErrorOutput})
    def post(self, request: Request, pk: str) -> Response:
        job = selectors.job_get_for_user(user=request.user, job_id=pk)
        try:
            job = services.job_cancel(job=job)
        except services.JobInputError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(JobOutput(job, context={"request": request}).data)


class JobRerunApi(APIView):
    """Queue a new job with the same settings."""

    throttle_scope = "job-create"

    @extend_schema(
        request=None, responses={201: JobOutput, 429: ErrorOutput, 503: ErrorOutput}
    )
    def post(self, request: Request, pk: str) -> Response:
        job = selectors.job_get_for_user(user=request.user, job_id=pk)
        try:
            new_job = services.job_rerun(job=job, user=request.user)
        except services.JobInputError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        except services.QuotaExceeded as exc:
            raise Throttled(detail=str(exc)) from None
        return Response(
            JobOutput(new_job, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ArtifactListApi(generics.ListAPIView[Artifact]):
    """Your downloadable artifacts with their sha256."""

    serializer_class = ArtifactOutput

    def get_queryset(self) -> QuerySet[Artifact]:
        return selectors.artifact_list_for_user(user=self.request.user)


class ArtifactDownloadApi(APIView):
    """Stream an artifact (HTTP Range supported; sha256 in X-Checksum-SHA256)."""

    @extend_schema(
        responses={
            (200, "application/octet-stream"): bytes,
            (206, "application/octet-stream"): bytes,
            416: OpenApiResponse(description="The Range cannot be satisfied."),
        }
    )
    def get(self, request: Request, pk: str) -> HttpResponse:
        artifact = selectors.artifact_get_for_user(user=request.user, artifact_id=pk)
        return artifact_response(request, artifact)


class UploadListCreateApi(APIView):
    """Upload a model (GGUF, or an archive of a safetensors directory), or list uploads.

    The upload is stored and answered at once with status ``checking``; a worker
    checks it (limited unpacking, headers, no pickle), then it is ``ready`` or
    ``refused`` with the reason and nothing kept on disk.
    """

    parser_classes = [MultiPartParser]

    @extend_schema(responses={200: UploadOutput(many=True)})
    def get(self, request: Request) -> Response:
        uploads = selectors.upload_list_for_user(user=request.user)
        return Response(UploadOutput(uploads, many=True).data)

    @extend_schema(
        request=UploadCreateInput,
        responses={
            201: UploadOutput,
            413: ErrorOutput,
            429: ErrorOutput,
            503: ErrorOutput,
        },
    )
    def post(self, request: Request) -> Response:
        limit = settings.QUANTPLAN_MAX_UPLOAD_BYTES
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit + 1_000_000:
            return Response(
                {
                    "detail": f"Uploads are limited to {limit / 1e9:.1f} GB.",
                    "code": "too_large",
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            services.upload_check_room(user=request.user)
        except services.QuotaExceeded as exc:
            raise Throttled(detail=str(exc)) from None
        payload = UploadCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            upload = model_upload_store(
                user_id=request.user.pk, uploaded=payload.validated_data["file"]
            )
        except UploadError as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)


class UploadDetailApi(APIView):
    """One upload (its check's status and reason), or delete it."""

    @extend_schema(responses={200: UploadOutput})
    def get(self, request: Request, pk: str) -> Response:
        upload = selectors.upload_get_for_user(user=request.user, upload_id=pk)
        return Response(UploadOutput(upload).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: str) -> Response:
        upload = selectors.upload_get_for_user(user=request.user, upload_id=pk)
        model_upload_delete(upload=upload)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeasurementsApi(APIView):
    """The calibration ledger: the error of each projected quantity, and its pairs."""

    @extend_schema(responses={200: OpenApiResponse(description="summary and records")})
    def get(self, request: Request) -> Response:
        from quantjobs.calibration import (
            calibration_records_for_user,
            calibration_summary_for_user,
        )

        records = calibration_records_for_user(user=request.user)[:500]
        return Response(
            {
                "summary": calibration_summary_for_user(user=request.user),
                "records": [
                    {
                        "job_id": str(r.result.job_id),
                        "format": r.format,
                        "quantity": r.quantity,
                        "projected": r.projected,
                        "measured": r.measured,
                        "error_pct": r.error_pct,
                        "projection_basis": r.projection_basis,
                        "device": r.device_key,
                        "engine": r.engine,
                        "model_id": r.model_id,
                        "model_family": r.model_family,
                        "parameter_count": r.parameter_count,
                        "created_at": r.created_at,
                    }
                    for r in records
                ],
            }
        )
