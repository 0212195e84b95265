"""Capacity and fine-tuning plans: resolve the model and GPUs a user named, run the engine.

The capacity page, ``POST /api/v1/capacity/`` and ``manage.py plan --requests-per-s``
all call ``capacity_compute``; none of them holds a rule of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from planner import engine
from planner.engine.capacity import (
    CapacityError,
    CapacityReport,
    CapacityRequest,
    Targets,
    Workload,
    capacity_search,
)
from planner.engine.finetune import (
    DEFAULT_TARGETS,
    FinetuneError,
    FinetuneEstimate,
    FinetuneRequest,
    estimate_finetune,
)
from planner.recipes import RecipeError, recipes_for_capacity_candidate
from planner.services import PlanInputError, gpu_resolve, model_resolve


@dataclass(frozen=True)
class CapacityInput:
    """Everything a capacity search needs, as the page, API and CLI collect it."""

    model: str = ""
    config: dict[str, Any] | None = None
    gpus: tuple[str, ...] = ()  # empty: every catalog GPU
    gpu_counts: tuple[int, ...] = (1, 2, 4, 8)
    formats: tuple[str, ...] | None = None  # None: every format
    requests_per_s: float | None = None
    tokens_per_month: float | None = None
    prompt_tokens: int = 1000
    output_tokens: int = 300
    hours_per_day: float = 24.0
    billed_hours_per_day: float = 24.0
    max_ttft_s: float | None = None
    max_tpot_ms: float | None = None
    min_tokens_per_s: float | None = None
    max_quality_loss_pct: float | None = None
    api_price: str | None = None
    provider: str | None = None
    price_usd_per_hour: float | None = None
    kv_cache_dtype: str = "f16"
    electricity_usd_per_kwh: float | None = None  # owning: None is the default


def capacity_report_body(*, report: CapacityReport) -> dict[str, Any]:
    """The report as JSON, with the serving recipes of its recommendation.

    A partial-offload recommendation's llama.cpp recipes carry its ``-ngl`` /
    ``--n-cpu-moe`` flags. ``recipes_error`` says why there are none, if so.
    """
    body = report.to_dict()
    body["recipes"], body["recipes_error"] = [], None
    rec = body.get("recommendation")
    if rec:
        try:
            body["recipes"] = recipes_for_capacity_candidate(
                body, rec, source="Quantplan capacity search"
            )
        except RecipeError as exc:
            body["recipes_error"] = str(exc)
    return body


def capacity_compute(
    *, data: CapacityInput, user: AbstractBaseUser | None
) -> CapacityReport:
    """Run the capacity search; every user error becomes a PlanInputError."""
    spec, _model_id = model_resolve(model=data.model, config=data.config)
    if data.gpus:
        gpus = [gpu_resolve(gpu=g) for g in dict.fromkeys(data.gpus)]
    else:
        gpus = engine.load_gpus()
    if data.formats is not None:
        for text in data.formats:
            try:
                engine.parse_format(text)
            except engine.FormatError as exc:
                raise PlanInputError(str(exc), field="formats") from None
    request = CapacityRequest(
        model=spec,
        gpus=gpus,
        workload=Workload(
            requests_per_s=data.requests_per_s,
            tokens_per_month=data.tokens_per_month,
            prompt_tokens=data.prompt_tokens,
            output_tokens=data.output_tokens,
            hours_per_day=data.hours_per_day,
            billed_hours_per_day=data.billed_hours_per_day,
        ),
        targets=Targets(
            max_ttft_s=data.max_ttft_s,
            max_tpot_ms=data.max_tpot_ms,
            min_tokens_per_s=data.min_tokens_per_s,
            max_quality_loss_pct=data.max_quality_loss_pct,
        ),
        formats=data.formats,
        gpu_counts=data.gpu_counts,
        kv_cache_dtype=data.kv_cache_dtype,
        api_price_id=data.api_price,
        provider=data.provider,
        price_usd_per_hour=data.price_usd_per_hour,
        electricity_usd_per_kwh=data.electricity_usd_per_kwh,
    )
    try:
        return capacity_search(request)
    except CapacityError as exc:
        raise PlanInputError(str(exc)) from None


@dataclass(frozen=True)
class FinetuneInput:
    """A fine-tuning plan as the page, API and CLI collect it."""

    gpu: str
    model: str = ""
    config: dict[str, Any] | None = None
    method: str = "lora"
    gpus: int = 1
    seq_len: int = 2048
    micro_batch: int = 1
    lora_rank: int = 16
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    optimizer: str = "adamw"
    gradient_checkpointing: bool = True
    dataset_tokens: int = 10_000_000
    epochs: float = 1.0
    price_usd_per_hour: float | None = None


def finetune_compute(
    *, data: FinetuneInput, user: AbstractBaseUser | None
) -> FinetuneEstimate:
    """Project fine-tuning memory, time and cost; user errors are PlanInputErrors."""
    spec, _model_id = model_resolve(model=data.model, config=data.config)
    gpu = gpu_resolve(gpu=data.gpu)
    usd = data.price_usd_per_hour
    if usd is None:
        usd, _source = engine.hourly_price_usd(gpu)
    try:
        return estimate_finetune(
            FinetuneRequest(
                model=spec,
                gpu=gpu,
                method=data.method,
                gpus=data.gpus,
                seq_len=data.seq_len,
                micro_batch=data.micro_batch,
                lora_rank=data.lora_rank,
                target_modules=data.target_modules,
                optimizer=data.optimizer,
                gradient_checkpointing=data.gradient_checkpointing,
                dataset_tokens=data.dataset_tokens,
                epochs=data.epochs,
                usd_per_gpu_hour=usd,
            )
        )
    except FinetuneError as exc:
        raise PlanInputError(str(exc)) from None
