"""API shapes for plans and catalogs."""

from __future__ import annotations

from typing import Any, TypeVar

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.schema import dataclass_serializer, stored_json, typed_dict_serializer
from planner.capacity_services import CapacityInput, FinetuneInput
from planner.engine.capacity import Candidate, CapacityReport
from planner.engine.catalog import ApiPrice, CatalogModel, GpuSpec
from planner.engine.cost import MAX_ELECTRICITY_USD_PER_KWH, QuantJobEstimate
from planner.engine.finetune import ALL_LINEAR, METHODS, OPTIMIZERS, FinetuneEstimate
from planner.engine.formats import FormatSpec
from planner.engine.plan import PlanResult
from planner.engine.recommend import Recommendation, Rejection
from planner.measurements import SearchFinding
from planner.models import Plan
from planner.recipes.target import Recipe
from planner.services import DEFAULT_FORMATS, PlanInput

_F = TypeVar("_F")


def _shallow_copy(field: _F) -> _F:
    """A copy sharing the field's attribute values; ``copy.copy`` does the same
    through ``__reduce_ex__`` at four times the cost."""
    new: _F = object.__new__(type(field))
    new.__dict__.update(field.__dict__)
    return new


class PlanCreateInput(serializers.Serializer[Any]):
    """A plan request: a model (catalog id, Hugging Face id, config.json, upload or
    GGUF path) and a GPU."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """Shallow copies of the declared fields, not DRF's deep copies.

        DRF deep-copies every declared field per serializer, which re-runs each
        field's ``__init__``: 1 ms of the plans endpoint's CPU per request (issue
        14, point 7). A shallow copy is enough here: ``bind()`` sets its name and
        parent on the copy only, and no field of this serializer keeps
        per-request state (the list's child is stateless).
        """
        return {name: _shallow_copy(f) for name, f in self._declared_fields.items()}

    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    config = serializers.JSONField(required=False, allow_null=True)
    upload = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="Id of one of your uploads (a GGUF or a model archive) to plan.",
    )
    path = serializers.CharField(
        max_length=1024,
        required=False,
        allow_blank=True,
        help_text="A .gguf file (the first part of a split one) or model folder "
        "under the server's local model folders (QUANTPLAN_LOCAL_MODEL_DIRS).",
    )
    gpu = serializers.CharField(max_length=100)
    gpus = serializers.IntegerField(
        min_value=1, max_value=64, required=False, allow_null=True
    )
    formats = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        min_length=1,
        max_length=64,
    )
    context = serializers.IntegerField(
        min_value=1, max_value=10_000_000, required=False
    )
    context_tokens = serializers.IntegerField(
        min_value=1, max_value=10_000_000, required=False
    )
    concurrency = serializers.IntegerField(
        min_value=1, max_value=100_000, required=False
    )
    engine = serializers.ChoiceField(choices=["vllm", "llama.cpp"], required=False)
    utilization = serializers.FloatField(min_value=0.01, max_value=1.0, required=False)
    gpu_memory_utilization = serializers.FloatField(
        min_value=0.1, max_value=1.0, required=False
    )
    kv_cache_dtype = serializers.ChoiceField(
        choices=["f32", "f16", "bf16", "fp8", "q8_0", "q4_0"], required=False
    )
    prompt_tokens = serializers.IntegerField(
        min_value=1, max_value=10_000_000, required=False
    )
    output_tokens = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False
    )
    api_price = serializers.CharField(max_length=100, required=False, allow_null=True)
    price_usd_per_hour = serializers.FloatField(
        min_value=0, max_value=10_000, required=False, allow_null=True
    )
    electricity_usd_per_kwh = serializers.FloatField(
        min_value=0,
        max_value=MAX_ELECTRICITY_USD_PER_KWH,
        required=False,
        allow_null=True,
        help_text="Electricity price for the owned cost (purchase over its "
        "depreciation period plus power); default 0.12 USD/kWh.",
    )
    max_quality_loss_pct = serializers.FloatField(
        min_value=0, max_value=1000, required=False, allow_null=True
    )
    min_tokens_per_s = serializers.FloatField(
        min_value=0, required=False, allow_null=True
    )
    max_ttft_s = serializers.FloatField(min_value=0, required=False, allow_null=True)
    save = serializers.BooleanField(required=False, default=False)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [
            k
            for k in ("model", "config", "upload", "path")
            if attrs.get(k) not in (None, "")
        ]
        if not given:
            raise serializers.ValidationError(
                {
                    "model": [
                        "Give a catalog model id, a Hugging Face id, a config.json, "
                        "an upload id or a GGUF path."
                    ]
                }
            )
        if len([k for k in given if k != "model"]) > 1:
            raise serializers.ValidationError(
                {"model": ["Give only one of config, upload and path."]}
            )
        return attrs

    def to_plan_input(self) -> PlanInput:
        data = dict(self.validated_data)
        context = data.pop("context", None) or data.pop("context_tokens", None)
        data.pop("context_tokens", None)
        data.pop("save", None)
        data.pop("name", None)
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        kwargs["formats"] = tuple(data.get("formats") or DEFAULT_FORMATS)
        if context:
            kwargs["context_tokens"] = context
        return PlanInput(**kwargs)


# The plan report is the engine's ``PlanReport.to_dict()``: its shape is read from
# the engine's dataclasses (config.schema.dataclass_serializer), not listed again.
QuantJobEstimateOutput = dataclass_serializer(QuantJobEstimate)
RejectionOutput = dataclass_serializer(
    Rejection,
    extra={"message": serializers.CharField(help_text="One line: format: reasons.")},
)
RecommendationOutput = dataclass_serializer(
    Recommendation,
    doc="The recommended format with reasons, or null with why_none (one sentence) "
    "and every rejected format with its structured reasons (codes does_not_fit, "
    "no_quality_estimate, quality_above_limit, speed_below_limit, ttft_above_limit).",
)
PlanResultOutput = dataclass_serializer(
    PlanResult,
    fields={
        "quantization_job": QuantJobEstimateOutput(
            help_text="Time, memory and money to produce this artifact (estimate)."
        ),
    },
    nonfinite_as_null=True,
)


class PlanReportBody(serializers.Serializer[Any]):
    """A computed plan: one result per format, the recommendation, the assumptions."""

    model = serializers.CharField(help_text="The model's id.")
    gpu = serializers.CharField(help_text="The GPU's catalog id.")
    engine = serializers.CharField()
    results = PlanResultOutput(many=True)
    recommendation = RecommendationOutput()
    pareto = serializers.ListField(
        child=serializers.CharField(),
        help_text="Formats no other format beats on both cost and quality.",
    )
    assumptions = serializers.ListField(child=serializers.CharField())


class PlanReportOutput(PlanReportBody):
    """A computed plan; ``id`` is set when it was saved (``save: true``)."""

    id = serializers.UUIDField(required=False, help_text="Set when the plan was saved.")


PlanRequestOutput = dataclass_serializer(
    PlanInput,
    name="PlanRequestOutput",
    doc="What a saved plan was computed from (the request, less a pasted config).",
    exclude=("config", "extra"),
)


SearchFindingOutput = dataclass_serializer(
    SearchFinding,
    name="MeasuredRecommendationOutput",
    doc="A finished accuracy-aware search run from this plan: the format it "
    "measured within the bar (answer), or none and the closest miss; "
    "source is always 'measured'.",
)


class PlanOutput(serializers.ModelSerializer[Plan]):
    """A saved plan with its report, as it was computed when saved, and the
    measured recommendations of the searches run from it since."""

    request = stored_json(PlanRequestOutput)
    report = stored_json(PlanReportBody)
    measured_recommendations = serializers.SerializerMethodField(
        help_text="Finished searches run from this plan, newest first; empty: none."
    )

    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "model_id",
            "request",
            "report",
            "measured_recommendations",
            "created_at",
        ]

    @extend_schema_field(SearchFindingOutput(many=True))
    def get_measured_recommendations(self, plan: Plan) -> list[dict[str, Any]]:
        # The view reads them through planner.selectors and passes them in (no
        # default: a caller that forgets must not claim "no search").
        findings: list[SearchFinding] = self.context["measured_recommendations"]
        return [f.to_dict() for f in findings]


class PlanSummaryOutput(serializers.ModelSerializer[Plan]):
    """A saved plan in a list."""

    request = stored_json(PlanRequestOutput)

    class Meta:
        model = Plan
        fields = ["id", "name", "model_id", "request", "created_at"]


class CapacityCreateInput(serializers.Serializer[Any]):
    """A capacity search: a model, GPU types (none: the catalog), traffic and targets."""

    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    config = serializers.JSONField(required=False, allow_null=True)
    gpus = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=64,
        help_text="GPU ids to compare; empty or absent: every catalog GPU.",
    )
    gpu_counts = serializers.ListField(
        child=serializers.ChoiceField(choices=[1, 2, 4, 8]),
        required=False,
        min_length=1,
        max_length=4,
    )
    formats = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        min_length=1,
        max_length=80,
    )
    requests_per_s = serializers.FloatField(
        min_value=0, max_value=1e6, required=False, allow_null=True
    )
    tokens_per_month = serializers.FloatField(
        min_value=0, max_value=1e15, required=False, allow_null=True
    )
    prompt_tokens = serializers.IntegerField(
        min_value=0, max_value=10_000_000, required=False
    )
    output_tokens = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False
    )
    hours_per_day = serializers.FloatField(min_value=0.1, max_value=24, required=False)
    billed_hours_per_day = serializers.FloatField(
        min_value=0.1, max_value=24, required=False
    )
    max_ttft_s = serializers.FloatField(
        min_value=0.001, required=False, allow_null=True
    )
    max_tpot_ms = serializers.FloatField(
        min_value=0.01, required=False, allow_null=True
    )
    min_tokens_per_s = serializers.FloatField(
        min_value=0.01, required=False, allow_null=True
    )
    max_quality_loss_pct = serializers.FloatField(
        min_value=0, max_value=1000, required=False, allow_null=True
    )
    api_price = serializers.CharField(max_length=100, required=False, allow_null=True)
    provider = serializers.CharField(max_length=100, required=False, allow_null=True)
    price_usd_per_hour = serializers.FloatField(
        min_value=0, max_value=10_000, required=False, allow_null=True
    )
    kv_cache_dtype = serializers.ChoiceField(
        choices=["f32", "f16", "bf16", "fp8", "q8_0", "q4_0"], required=False
    )
    electricity_usd_per_kwh = serializers.FloatField(
        min_value=0, max_value=10, required=False, allow_null=True
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("model") and attrs.get("config") is None:
            raise serializers.ValidationError(
                {
                    "model": [
                        "Give a catalog model id, a Hugging Face id, or a config.json."
                    ]
                }
            )
        if (
            attrs.get("requests_per_s") is None
            and attrs.get("tokens_per_month") is None
        ):
            raise serializers.ValidationError(
                {
                    "requests_per_s": [
                        "Give the traffic: requests_per_s, or tokens_per_month."
                    ]
                }
            )
        return attrs

    def to_capacity_input(self) -> CapacityInput:
        data = {k: v for k, v in self.validated_data.items() if v is not None}
        for key in ("gpus", "gpu_counts", "formats"):
            if key in data:
                data[key] = tuple(data[key])
        return CapacityInput(**data)


CandidateOutput = dataclass_serializer(
    Candidate,
    extra={"label": serializers.CharField(help_text="e.g. '2x NVIDIA A100 80GB, …'")},
    nonfinite_as_null=True,
)
CapacityReportOutput = dataclass_serializer(
    CapacityReport,
    doc="A capacity search: recommendation, candidates, closest miss, verdict, "
    "curve, and the serving recipes of the recommendation.",
    extra={  # capacity_services.capacity_report_body adds them
        "recipes": typed_dict_serializer(Recipe, name="CapacityRecipeOutput")(
            many=True,
            help_text="Serving recipes of the recommendation (llama.cpp ones carry "
            "its partial-offload flags).",
        ),
        "recipes_error": serializers.CharField(
            allow_null=True, help_text="Why there are no recipes, when there are none."
        ),
    },
)


class FinetuneCreateInput(serializers.Serializer[Any]):
    """A fine-tuning plan: model, GPU, method and batch shape."""

    model = serializers.CharField(max_length=200)
    gpu = serializers.CharField(max_length=100)
    gpus = serializers.IntegerField(min_value=1, max_value=8, required=False)
    method = serializers.ChoiceField(choices=list(METHODS), required=False)
    seq_len = serializers.IntegerField(
        min_value=1, max_value=10_000_000, required=False
    )
    micro_batch = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    lora_rank = serializers.IntegerField(min_value=1, max_value=4096, required=False)
    target_modules = serializers.ListField(
        child=serializers.ChoiceField(choices=list(ALL_LINEAR)),
        required=False,
        min_length=1,
        max_length=len(ALL_LINEAR),
    )
    optimizer = serializers.ChoiceField(choices=list(OPTIMIZERS), required=False)
    gradient_checkpointing = serializers.BooleanField(required=False)
    dataset_tokens = serializers.IntegerField(
        min_value=1, max_value=10**15, required=False
    )
    epochs = serializers.FloatField(min_value=0.01, max_value=1000, required=False)
    price_usd_per_hour = serializers.FloatField(
        min_value=0, max_value=10_000, required=False, allow_null=True
    )

    def to_finetune_input(self) -> FinetuneInput:
        data = {k: v for k, v in self.validated_data.items() if v is not None}
        if "target_modules" in data:
            data["target_modules"] = tuple(data["target_modules"])
        return FinetuneInput(**data)


FinetuneEstimateOutput = dataclass_serializer(FinetuneEstimate)


# Catalog entries, each the ``to_dict()`` of its engine dataclass.
CatalogGpuOutput = dataclass_serializer(GpuSpec, name="CatalogGpuOutput")
CatalogModelOutput = dataclass_serializer(
    CatalogModel,
    name="CatalogModelOutput",
    exclude=("spec",),
    extra={
        "parameters": serializers.IntegerField(help_text="Total parameters."),
        "active_parameters": serializers.IntegerField(
            help_text="Parameters used per token (fewer than the total for MoE)."
        ),
    },
)
CatalogFormatOutput = dataclass_serializer(FormatSpec, name="CatalogFormatOutput")
CatalogApiPriceOutput = dataclass_serializer(ApiPrice, name="CatalogApiPriceOutput")
