"""API shapes for plans and catalogs."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from planner.capacity_services import CapacityInput, FinetuneInput
from planner.engine.finetune import ALL_LINEAR, METHODS, OPTIMIZERS
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
    recommendation = serializers.DictField(
        help_text=(
            "format (or null), reasons (list of strings), why_none (one sentence, "
            "or null) and rejected: one object per rejected format "
            "{format, message, reasons: [{code, message, value, limit, unit}]}, "
            "codes does_not_fit, no_quality_estimate, quality_above_limit, "
            "speed_below_limit, ttft_above_limit."
        )
    )
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


class CapacityReportOutput(serializers.Serializer[Any]):
    """A capacity search: recommendation, candidates, closest miss, verdict, curve."""

    model = serializers.CharField()
    workload = serializers.DictField()
    targets = serializers.DictField()
    requests_per_s = serializers.FloatField()
    tokens_per_month = serializers.FloatField()
    recommendation = serializers.DictField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    why_none = serializers.CharField(allow_null=True)
    closest = serializers.DictField(allow_null=True)
    candidates = serializers.ListField(child=serializers.DictField())
    per_gpu = serializers.ListField(child=serializers.DictField())
    verdict = serializers.DictField(allow_null=True)
    curve = serializers.ListField(child=serializers.DictField())
    searched = serializers.IntegerField()
    assumptions = serializers.ListField(child=serializers.CharField())
    recipes = serializers.ListField(
        child=serializers.DictField(),
        help_text="Serving recipes of the recommendation (llama.cpp ones carry its "
        "partial-offload flags)",
    )
    recipes_error = serializers.CharField(allow_null=True)


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
