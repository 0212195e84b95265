"""``plan()``: size, time and price a model in several formats on one kind of GPU."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .calibration import ledger_engine, measurement_for, speed_calibration_for
from .catalog import ApiPrice
from .cost import (
    HOURS_PER_MONTH,
    OWNED_PROVIDER,
    CostEstimate,
    estimate_cost,
    hourly_price_usd,
    owned_usd_per_hour,
    quantization_job_estimate,
)
from .formats import FormatError, FormatSpec, parse_format
from .kv_cache import kv_cache_bytes
from .offload import one_gpu_offload
from .provenance import (
    calibrated_speed,
    quality_with_label,
    size_and_memory_sources,
)
from .quality import QualityLoss
from .recommend import (
    DEFAULT_MAX_QUALITY_LOSS_PCT,
    Limits,
    Recommendation,
    pareto_front,
    recommend,
)
from .request import (
    DEFAULT_FORMATS,
    MAX_CONCURRENCY,
    MAX_CONTEXT_TOKENS,
    PlanError,
    PlanRequest,
    engine_support,
    validate_request,
)
from .runtime import (
    TENSOR_PARALLEL_SIZES,
    VLLM_BLOCK_TOKENS,
    VLLM_MAX_NUM_BATCHED_TOKENS,
    estimate_memory,
    fewest_gpus,
    max_concurrency,
    max_context_tokens,
)
from .speed import estimate_speed
from .tensors import parameter_breakdown
from .weights import weight_layout

__all__ = [
    "DEFAULT_FORMATS",
    "MAX_CONCURRENCY",
    "MAX_CONTEXT_TOKENS",
    "PlanError",
    "PlanReport",
    "PlanRequest",
    "PlanResult",
    "clear_caches",
    "engine_support",
    "plan",
    "validate_request",
]


@dataclass(frozen=True)
class PlanResult:
    """One format's plan: sizes, memory per GPU, speed, cost and quality."""

    format: str
    format_label: str
    family: str
    gpu: str
    gpu_name: str
    gpus: int
    engine: str
    parameters: int  # total parameters
    parameter_breakdown: dict[str, int]
    artifact_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    kv_cache_bytes_per_gpu: int
    weights_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    overhead_bytes: int
    total_bytes_per_gpu: int
    budget_bytes_per_gpu: int
    host_bytes: int
    gpus_needed: int | None
    fits: bool
    ttft_s: float
    decode_tokens_per_s: float
    total_decode_tokens_per_s: float
    decode_bound: str
    max_context_tokens: int
    max_concurrency: int
    cost_usd_per_hour: float | None
    cost_usd_per_month: float | None
    cost_usd_per_million_tokens: float | None
    cost_usd_per_million_input_tokens: float | None
    cost_usd_per_million_output_tokens: float | None
    price_source: str
    api_cost_usd_per_million_tokens: float | None
    break_even_tokens_per_month: float | None
    expected_quality_loss: QualityLoss
    quantization_job: dict[str, object]
    needs_cuda: bool
    experimental: bool
    warnings: list[str]
    assumptions: list[str]
    unfit_reasons: tuple[str, ...] = ()
    # llama.cpp on one GPU with layers or experts in host RAM, where the format
    # does not fit one GPU whole: flags, layer counts and bytes (offload.py).
    offload: dict[str, Any] | None = None
    prompt_tokens_per_s: float = 0.0  # prefill rate of one request's prompt
    # Where each number comes from: "measured (...)", "calibrated from n runs"
    # or "estimated (...)", keyed by the field it describes.
    sources: dict[str, str] = field(default_factory=dict)
    # Owning the same GPUs instead (purchase over its depreciation period plus
    # electricity, cost.owned_usd_per_hour) at the same utilization, next to the
    # price above; None where the catalog lists no purchase price (the source says).
    owned_cost_usd_per_month: float | None = None
    owned_cost_usd_per_million_tokens: float | None = None
    owned_price_source: str = ""

    @property
    def quality_loss_pct(self) -> float | None:
        """Expected perplexity increase in percent, or None when unknown."""
        value = self.expected_quality_loss.get("perplexity_increase_pct")
        return float(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (bytes as ints, times in seconds, money in USD)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        return out


@dataclass(frozen=True)
class PlanReport:
    """All results, the recommendation, the Pareto front and the assumptions."""

    request: PlanRequest
    results: list[PlanResult]
    recommendation: Recommendation
    pareto: list[str]
    assumptions: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the whole report."""
        return {
            "model": self.request.model.model_id,
            "gpu": self.request.gpu.id,
            "engine": self.request.engine,
            "results": [r.to_dict() for r in self.results],
            "recommendation": self.recommendation.to_dict(),
            "pareto": list(self.pareto),
            "assumptions": list(self.assumptions),
        }


def _measured_for(req: PlanRequest, fmt: FormatSpec) -> Mapping[str, Any] | None:
    for key, value in req.measured.items():
        try:
            if parse_format(key).id == fmt.id:
                return value
        except FormatError:
            continue
    return None


def _plan_one(
    req: PlanRequest,
    fmt: FormatSpec,
    cache: str,
    api: ApiPrice | None,
    usd_per_gpu_hour: float | None,
    price_source: str,
    owned: tuple[float | None, str],
) -> PlanResult:
    spec, gpu, engine = req.model, req.gpu, req.engine
    loaded, warnings, blockers = engine_support(fmt, gpu, engine)
    gmu = req.gpu_memory_utilization
    needed = fewest_gpus(
        spec,
        loaded,
        gpu,
        context_tokens=req.context_tokens,
        sequences=req.concurrency,
        engine=engine,
        cache_dtype=cache,
        gpu_memory_utilization=gmu,
    )
    largest = TENSOR_PARALLEL_SIZES[-1] if gpu.kind == "gpu" else 1
    n = req.gpus or needed or largest
    mem = estimate_memory(
        spec,
        loaded,
        gpu,
        gpus=n,
        context_tokens=req.context_tokens,
        sequences=req.concurrency,
        engine=engine,
        cache_dtype=cache,
        gpu_memory_utilization=gmu,
    )
    reasons = list(blockers) + list(mem.reasons)
    warnings.extend(blockers)
    if req.gpus is None and needed is None and not mem.reasons:
        reasons.append(f"does not fit on {largest}x {gpu.name}")
    if req.gpus is None and needed is None:
        warnings.append(
            f"more than {largest} GPUs would be needed: multi-node serving is "
            "not modelled"
        )
    fits = not reasons
    offload = one_gpu_offload(req, loaded, cache, engine, fits=fits, gpus=n)
    if offload is not None:
        warnings.append(
            f"on one {gpu.name}, llama.cpp can run it with "
            f"{offload['host_weight_bytes'] / 1e9:.1f} GB of weights in RAM "
            f"({offload['flags']})"
        )
    speed = estimate_speed(
        spec,
        loaded,
        gpu,
        engine=engine,
        gpus=n,
        concurrency=req.concurrency,
        prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens,
        cache_dtype=cache,
    )
    ledger = ledger_engine(engine, gpu.kind)
    speed, prompt_label, generation_label = calibrated_speed(
        speed,
        *(
            speed_calibration_for(
                req.calibrations,
                device=req.device_key,
                engine=ledger,
                format_family=fmt.family,
                quantity=quantity,
            )
            for quantity in ("prompt_tokens_per_s", "generation_tokens_per_s")
        ),
    )
    measurement = measurement_for(
        req.measurements, model_id=spec.model_id, format_id=fmt.id
    )
    quality = quality_with_label(req, fmt, measurement, _measured_for(req, fmt))
    artifact = weight_layout(spec, loaded).artifact_bytes
    sources = {
        "prompt_tokens_per_s": prompt_label,
        "ttft_s": prompt_label,
        "decode_tokens_per_s": generation_label,
        "total_decode_tokens_per_s": generation_label,
        "quality": quality["label"],
        **size_and_memory_sources(req, measurement, engine=engine, gpus=n),
    }
    if sources["artifact_bytes"].startswith("measured") and measurement:
        artifact = int(measurement.artifact_bytes or artifact)

    def cost_at(usd: float | None, source: str, vs: ApiPrice | None) -> CostEstimate:
        return estimate_cost(
            speed, usd_per_gpu_hour=usd, price_source=source, gpus=n,
            utilization=req.utilization, prompt_tokens=req.prompt_tokens,
            output_tokens=req.output_tokens, api=vs,
        )  # fmt: skip

    cost = cost_at(usd_per_gpu_hour, price_source, api)
    # The same deployment owned rather than rented, by the same formula at the
    # owned hourly price, so the two per-1M-token figures compare directly.
    owned_source = owned[1]
    owned_cost = cost_at(owned[0], owned_source, None) if owned[0] is not None else None
    layout = weight_layout(spec, loaded)
    job = quantization_job_estimate(
        spec, loaded, gpu, usd_per_gpu_hour=usd_per_gpu_hour
    )
    warnings.extend(speed.assumptions)
    warnings.extend(cost.notes)
    if req.context_tokens > spec.max_position_embeddings:
        warnings.append(
            f"context {req.context_tokens:,} is beyond the model's "
            f"{spec.max_position_embeddings:,} trained positions"
        )
    if fmt.needs_imatrix:
        warnings.append(
            f"{fmt.id} needs an importance matrix (calibration run) to keep quality"
        )
    assumptions = [
        f"{engine} on {n}x {gpu.name}"
        + (" with tensor parallelism" if engine == "vllm" and n > 1 else "")
        + (" with layers split across GPUs" if engine == "llama.cpp" and n > 1 else ""),
        f"KV cache {cache}, {req.concurrency} sequence(s) of {req.context_tokens:,} tokens",
        f"decode is {speed.decode_bound}-bound at {req.concurrency} concurrent sequence(s)",
        f"price: {price_source}",
    ]
    return PlanResult(
        format=fmt.id,
        format_label=fmt.label,
        family=fmt.family,
        gpu=gpu.id,
        gpu_name=gpu.name,
        gpus=n,
        engine=engine,
        parameters=parameter_breakdown(spec).total,
        parameter_breakdown=parameter_breakdown(spec).to_dict(),
        artifact_bytes=artifact,
        weights_bytes=layout.weights_bytes,
        kv_cache_bytes=kv_cache_bytes(
            spec,
            context_tokens=req.context_tokens,
            sequences=req.concurrency,
            cache_dtype=cache,
        ),
        kv_cache_bytes_per_gpu=mem.kv_cache_bytes_per_gpu,
        weights_bytes_per_gpu=mem.weights_bytes_per_gpu,
        activation_bytes_per_gpu=mem.activation_bytes_per_gpu,
        overhead_bytes=mem.overhead_bytes_per_gpu + mem.activation_bytes_per_gpu,
        total_bytes_per_gpu=mem.total_bytes_per_gpu,
        budget_bytes_per_gpu=mem.budget_bytes_per_gpu,
        host_bytes=mem.host_bytes,
        gpus_needed=needed,
        fits=fits,
        ttft_s=speed.ttft_s,
        decode_tokens_per_s=speed.decode_tokens_per_s,
        total_decode_tokens_per_s=speed.total_decode_tokens_per_s,
        decode_bound=speed.decode_bound,
        max_context_tokens=max_context_tokens(
            spec,
            loaded,
            gpu,
            gpus=n,
            sequences=req.concurrency,
            engine=engine,
            cache_dtype=cache,
            gpu_memory_utilization=gmu,
        ),
        max_concurrency=max_concurrency(
            spec,
            loaded,
            gpu,
            gpus=n,
            context_tokens=req.context_tokens,
            engine=engine,
            cache_dtype=cache,
            gpu_memory_utilization=gmu,
        ),
        cost_usd_per_hour=cost.usd_per_hour,
        cost_usd_per_month=cost.usd_per_month,
        cost_usd_per_million_tokens=cost.usd_per_million_tokens,
        cost_usd_per_million_input_tokens=cost.usd_per_million_input_tokens,
        cost_usd_per_million_output_tokens=cost.usd_per_million_output_tokens,
        price_source=price_source,
        api_cost_usd_per_million_tokens=cost.api_usd_per_million_tokens,
        break_even_tokens_per_month=cost.break_even_tokens_per_month,
        expected_quality_loss=quality,
        quantization_job=job.to_dict(),
        needs_cuda=fmt.needs_cuda,
        experimental=engine == "vllm" and loaded.family == "gguf",
        warnings=warnings,
        assumptions=assumptions,
        unfit_reasons=tuple(reasons),
        offload=offload,
        prompt_tokens_per_s=speed.prefill_tokens_per_s,
        sources=sources,
        owned_cost_usd_per_month=owned_cost.usd_per_month if owned_cost else None,
        owned_cost_usd_per_million_tokens=(
            owned_cost.usd_per_million_tokens if owned_cost else None
        ),
        owned_price_source=owned_source,
    )


def _paid_for(req: PlanRequest) -> str:
    """'GPUs are rented', 'server is owned': what the month's cost pays for."""
    unit = req.gpu.unit
    what = f"{unit}s are" if unit == "GPU" else f"{unit} is"
    return f"{what} {'owned' if req.provider == OWNED_PROVIDER else 'rented'}"


def _report_assumptions(req: PlanRequest) -> list[str]:
    out = [
        "memory in bytes; GB = 1e9 bytes, GiB = 2^30 bytes",
        "weights: GGUF sized per tensor with llama.cpp's quantization rules; safetensors "
        "formats keep embeddings, lm_head, norms and routers in 16-bit",
        f"vLLM: KV cache in blocks of {VLLM_BLOCK_TOKENS} tokens, activation peak of a "
        f"{VLLM_MAX_NUM_BATCHED_TOKENS}-token batch, CUDA context and graphs ~1 GiB, all "
        f"within gpu_memory_utilization={req.gpu_memory_utilization:g} (vLLM then "
        "preallocates that whole share for its KV cache)",
        (
            "llama.cpp on the CPU: nothing offloaded (-ngl 0), weights and KV cache in "
            "RAM, flash attention on, 512-token micro-batches"
            if req.gpu.kind == "cpu"
            else "llama.cpp: all layers offloaded, input embedding in host RAM, flash "
            "attention on, 512-token micro-batches"
        ),
        "speed: roofline with stated efficiency factors (planner/engine/speed.py), not a "
        "benchmark of this deployment, except where a row's source says 'calibrated "
        "from n runs' (refitted from measurements on this very device)",
        f"cost: the {_paid_for(req)} and paid for all {HOURS_PER_MONTH} hours of the "
        "month; "
        f"utilization={req.utilization:g} is the share spent serving at concurrency "
        f"{req.concurrency}",
        f"prompt {req.prompt_tokens} and output {req.output_tokens} tokens per request",
        "quality: published perplexity/KL measurements for the model's family and size "
        "(see each source), unless a row says 'measured' (a job on this very model)",
    ]
    if req.max_quality_loss_pct is None:
        out.append(
            f"no quality limit given: formats losing more than "
            f"{DEFAULT_MAX_QUALITY_LOSS_PCT:g}% perplexity are not recommended"
        )
    out.extend(req.model.notes)
    return out


def clear_caches() -> None:
    """Forget every memoised size and layout (benchmarks measure cold runs with it)."""
    from . import (
        cost,
        gguf_file,
        gguf_rules,
        kv_cache,
        memo,
        runtime,
        tensors,
        weights,
    )

    for fn in (
        tensors._inventory,
        tensors._breakdown,
        gguf_rules._category,
        gguf_rules._ordered,
        gguf_file._header_bytes,
        gguf_rules._classify,
        gguf_rules._mixture,
        gguf_rules.gguf_tensor_sizes,
        weights._layout,
        weights._tensor_groups,
        memo._plan_json,
        runtime._fixed_bytes_cached,
        cost._job,
        kv_cache.kv_bytes_per_token_per_layer,
    ):
        fn.cache_clear()


def plan(request: PlanRequest) -> PlanReport:
    """Plan every requested format for the model, GPU and workload; recommend one."""
    formats, cache, api = validate_request(request)
    usd, source = hourly_price_usd(
        request.gpu,
        provider=request.provider,
        override_usd_per_hour=request.price_usd_per_hour,
        usd_per_kwh=request.electricity_usd_per_kwh,
    )
    owned = owned_usd_per_hour(request.gpu, usd_per_kwh=request.electricity_usd_per_kwh)
    results = [_plan_one(request, f, cache, api, usd, source, owned) for f in formats]
    limits = Limits(
        request.max_quality_loss_pct, request.min_tokens_per_s, request.max_ttft_s
    )
    return PlanReport(
        request=request,
        results=results,
        recommendation=recommend(results, limits, unit=request.gpu.unit),
        pareto=pareto_front(results),
        assumptions=_report_assumptions(request),
    )
