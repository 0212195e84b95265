"""API shapes for plans and catalogs."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from planner.models import Plan
from planner.services import DEFAULT_FORMATS, PlanInput


class PlanCreateInput(serializers.Serializer[Any]):
    """A plan request: a model (catalog id, Hugging Face id, config.json, upload or
    GGUF path) and a GPU."""

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


class PlanReportOutput(serializers.Serializer[Any]):
    """A computed plan: one result per format, the recommendation, the assumptions."""

    model = serializers.CharField()
    gpu = serializers.CharField()
    engine = serializers.CharField()
    results = serializers.ListField(child=serializers.DictField())
    recommendation = serializers.DictField()
    pareto = serializers.ListField()
    assumptions = serializers.ListField()
    id = serializers.UUIDField(required=False, help_text="Set when the plan was saved.")


class PlanOutput(serializers.ModelSerializer[Plan]):
    """A saved plan with its report."""

    class Meta:
        model = Plan
        fields = ["id", "name", "model_id", "request", "report", "created_at"]


class PlanSummaryOutput(serializers.ModelSerializer[Plan]):
    """A saved plan in a list."""

    class Meta:
        model = Plan
        fields = ["id", "name", "model_id", "request", "created_at"]
