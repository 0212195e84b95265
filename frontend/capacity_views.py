"""Capacity and fine-tuning pages: the cheapest deployment for a traffic within
latency targets, and the memory and time of fine-tuning a model."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from frontend.charts import capacity as capacity_charts
from planner import capacity_services, engine, services
from planner.engine.finetune import ALL_LINEAR, DEFAULT_TARGETS


def _gpu_choices() -> list[tuple[str, str]]:
    return [(g.id, g.name) for g in engine.catalog.load_gpus()]


class CapacityForm(forms.Form):
    """A traffic, its targets, and the GPU types to compare (none: all of them)."""

    model = forms.CharField(
        max_length=200,
        initial="llama-3-70b",
        help_text="A catalog id (e.g. llama-3-70b) or a Hugging Face id.",
    )
    gpus = forms.MultipleChoiceField(
        required=False,
        label="GPU types",
        help_text="Leave empty to compare every catalog accelerator.",
    )
    requests_per_s = forms.FloatField(
        min_value=0, max_value=1e6, initial=2, label="Requests per second"
    )
    prompt_tokens = forms.IntegerField(min_value=0, max_value=10_000_000, initial=1000)
    output_tokens = forms.IntegerField(min_value=1, max_value=1_000_000, initial=300)
    hours_per_day = forms.FloatField(
        min_value=0.1,
        max_value=24,
        initial=24,
        label="Hours a day the traffic arrives",
        help_text="The deployment is paid for all 24.",
    )
    max_ttft_s = forms.FloatField(
        min_value=0.001, required=False, initial=1, label="Time to first token p95 (s)"
    )
    max_tpot_ms = forms.FloatField(
        min_value=0.01, required=False, label="Time per output token p95 (ms)"
    )
    min_tokens_per_s = forms.FloatField(
        min_value=0.01, required=False, initial=30, label="Tokens/s per user, at least"
    )
    max_quality_loss_pct = forms.FloatField(
        min_value=0, max_value=1000, required=False, label="Quality loss at most (%)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpus"].choices = _gpu_choices()  # type: ignore[attr-defined]

    def to_input(self) -> capacity_services.CapacityInput:
        d = self.cleaned_data
        return capacity_services.CapacityInput(
            model=d["model"].strip(),
            gpus=tuple(d.get("gpus") or ()),
            requests_per_s=d["requests_per_s"],
            prompt_tokens=d["prompt_tokens"],
            output_tokens=d["output_tokens"],
            hours_per_day=d["hours_per_day"],
            max_ttft_s=d.get("max_ttft_s"),
            max_tpot_ms=d.get("max_tpot_ms"),
            min_tokens_per_s=d.get("min_tokens_per_s"),
            max_quality_loss_pct=d.get("max_quality_loss_pct"),
        )


@login_required
@require_http_methods(["GET", "POST"])
def capacity_page(request: HttpRequest) -> HttpResponse:
    """Search GPU types, counts and formats; show the answer, the curves, the list."""
    form = CapacityForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        try:
            report = capacity_services.capacity_compute(
                data=form.to_input(), user=request.user
            )
        except services.PlanInputError as exc:
            target = exc.field if exc.field in form.fields else None
            form.add_error(target, str(exc))
        else:
            body = capacity_services.capacity_report_body(report=report)
            context["report"] = body
            context["curve_charts"] = capacity_charts.load_curve_charts(body)
    return render(request, "frontend/capacity.html", context)


class FinetuneForm(forms.Form):
    """A fine-tuning run: model, GPU, method and batch shape."""

    model = forms.CharField(max_length=200, initial="llama-3.1-8b")
    gpu = forms.ChoiceField(label="GPU", initial="a100-80gb")
    gpus = forms.TypedChoiceField(
        choices=[(n, n) for n in (1, 2, 4, 8)], coerce=int, initial=1, label="GPUs"
    )
    method = forms.ChoiceField(
        choices=[("full", "Full"), ("lora", "LoRA"), ("qlora", "QLoRA (4-bit base)")],
        initial="lora",
    )
    seq_len = forms.IntegerField(
        min_value=1, max_value=10_000_000, initial=2048, label="Sequence length"
    )
    micro_batch = forms.IntegerField(min_value=1, max_value=4096, initial=1)
    lora_rank = forms.IntegerField(min_value=1, max_value=4096, initial=16)
    target_modules = forms.MultipleChoiceField(
        choices=[(t, t) for t in ALL_LINEAR],
        initial=list(DEFAULT_TARGETS),
        required=False,
        help_text="LoRA target modules (ignored for full fine-tuning).",
    )
    optimizer = forms.ChoiceField(
        choices=[("adamw", "AdamW (32-bit states)"), ("adamw-8bit", "AdamW 8-bit")]
    )
    gradient_checkpointing = forms.BooleanField(required=False, initial=True)
    dataset_tokens = forms.IntegerField(
        min_value=1, max_value=10**15, initial=10_000_000, label="Tokens per epoch"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu"].choices = _gpu_choices()  # type: ignore[attr-defined]

    def to_input(self) -> capacity_services.FinetuneInput:
        d = self.cleaned_data
        return capacity_services.FinetuneInput(
            model=d["model"].strip(),
            gpu=d["gpu"],
            gpus=d["gpus"],
            method=d["method"],
            seq_len=d["seq_len"],
            micro_batch=d["micro_batch"],
            lora_rank=d["lora_rank"],
            target_modules=tuple(d.get("target_modules") or DEFAULT_TARGETS),
            optimizer=d["optimizer"],
            gradient_checkpointing=bool(d.get("gradient_checkpointing")),
            dataset_tokens=d["dataset_tokens"],
        )


FINETUNE_PARTS = (
    ("weights_bytes", "Weights"),
    ("gradients_bytes", "Gradients"),
    ("optimizer_bytes", "Optimizer states"),
    ("activations_bytes", "Activations"),
    ("loss_bytes", "Loss (logits)"),
    ("overhead_bytes", "Runtime overhead"),
)


@login_required
@require_http_methods(["GET", "POST"])
def finetune_page(request: HttpRequest) -> HttpResponse:
    """Fine-tuning memory per GPU by part, time per epoch and cost."""
    form = FinetuneForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        try:
            est = capacity_services.finetune_compute(
                data=form.to_input(), user=request.user
            )
        except services.PlanInputError as exc:
            target = exc.field if exc.field in form.fields else None
            form.add_error(target, str(exc))
        else:
            body = est.to_dict()
            context["estimate"] = body
            context["parts"] = [
                (label, body[key] / 1e9) for key, label in FINETUNE_PARTS
            ]
            context["hours"] = body["time_per_epoch_s"] / 3600
            context["total_gb"] = body["total_bytes"] / 1e9
            context["budget_gb"] = body["budget_bytes"] / 1e9
    return render(request, "frontend/finetune.html", context)
