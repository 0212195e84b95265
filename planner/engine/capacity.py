# Kept whole: one search (candidates, bound, report) changing now; split it after.
"""Capacity planning: the cheapest deployment that serves a traffic within latency targets.

The search covers GPU type x GPU count x format x engine (vLLM with tensor
parallelism for safetensors formats; llama.cpp with layers split for GGUF). For
each deployment it finds the highest number of requests in flight at which the
p95 targets still hold (``latency.load_point``) and memory holds their KV cache,
then the replicas the traffic needs and the money at the real load: the month is
paid for the hours the deployment is up, whether or not it is busy.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import ApiPrice, CatalogError, GpuSpec, get_api_price, load_api_prices
from .cost import api_blended_usd_per_million, hourly_price_usd
from .formats import FormatError, FormatSpec, list_formats, parse_format
from .kv_cache import CacheDtypeError, normalize_cache_dtype
from .latency import (
    MAX_SEQUENCES,
    STEP_TOKEN_BUDGET,
    Z95,
    LoadPoint,
    StepModel,
    load_curve,
    load_point,
    p95_latency,
    step_model,
)
from .offload import offload_plan
from .quality import (
    exceeds_quality_limit,
    expected_quality_loss,
    quality_family,
    quality_limit_pct,
)
from .request import engine_support
from .runtime import (
    TENSOR_PARALLEL_SIZES,
    _fixed_bytes,
    budget_bytes_per_gpu,
    kv_cache_bytes_per_gpu,
    valid_tensor_parallel,
)
from .spec import ModelSpec
from .tensors import parameter_breakdown

DAYS_PER_MONTH = 365 / 12
MAX_REQUESTS_PER_S = 1e6
MAX_CANDIDATES = 40
COST_TIE_FRACTION = 0.02


class CapacityError(ValueError):
    """A capacity request that cannot be searched; the message says what to change."""


@dataclass(frozen=True)
class Workload:
    """The traffic: requests per second (or tokens a month) and their shape."""

    requests_per_s: float | None = None
    tokens_per_month: float | None = None  # prompt + output tokens
    prompt_tokens: int = 1000
    output_tokens: int = 300
    hours_per_day: float = 24.0  # hours a day the traffic arrives
    billed_hours_per_day: float = 24.0  # hours a day the deployment is up

    def rate_per_s(self) -> float:
        """Requests per second while the traffic runs."""
        if self.requests_per_s is not None:
            return float(self.requests_per_s)
        per_request = self.prompt_tokens + self.output_tokens
        seconds = self.hours_per_day * 3600 * DAYS_PER_MONTH
        return float(self.tokens_per_month or 0.0) / per_request / seconds

    def tokens_served_per_month(self) -> float:
        """Prompt and output tokens a month at this traffic."""
        return (
            self.rate_per_s()
            * (self.prompt_tokens + self.output_tokens)
            * 3600
            * self.hours_per_day
            * DAYS_PER_MONTH
        )


@dataclass(frozen=True)
class Targets:
    """Latency and quality targets; None means no target."""

    max_ttft_s: float | None = None  # p95 time to first token
    max_tpot_ms: float | None = None  # p95 time per output token
    min_tokens_per_s: float | None = None  # per user, at p95
    max_quality_loss_pct: float | None = None


@dataclass(frozen=True)
class CapacityRequest:
    """What to search: a model, the GPU types (empty: the catalog), traffic, targets."""

    model: ModelSpec
    gpus: Sequence[GpuSpec]
    workload: Workload = Workload()
    targets: Targets = Targets()
    formats: Sequence[str] | None = None  # None: every format
    gpu_counts: Sequence[int] = TENSOR_PARALLEL_SIZES
    kv_cache_dtype: str = "f16"
    gpu_memory_utilization: float = 0.9
    api_price_id: str | None = None  # None: the cheapest API listed as comparable
    provider: str | None = None
    price_usd_per_hour: float | None = None  # per GPU; overrides the catalog
    # Owning ("owned" provider): electricity price; None: the stated default.
    electricity_usd_per_kwh: float | None = None
    max_candidates: int = MAX_CANDIDATES


@dataclass(frozen=True)
class Candidate:
    """One deployment at the highest load that meets the targets (or why none does)."""

    gpu: str
    gpu_name: str
    gpus: int
    format: str
    engine: str
    tensor_parallel: int
    meets_targets: bool
    concurrency: int  # requests in flight per replica, the most meeting the targets
    memory_max_concurrency: int
    load: LoadPoint | None
    replicas: int
    usd_per_gpu_hour: float | None
    price_source: str
    usd_per_month: float | None
    usd_per_million_tokens: float | None
    replica_tokens_per_month: float  # what one replica serves within the targets
    quality_loss_pct: float | None
    total_bytes_per_gpu: int
    budget_bytes_per_gpu: int
    limited_by: str
    shortfall: float = 0.0  # worst measured/target ratio when the targets fail
    warnings: tuple[str, ...] = ()
    llama_cpp_flags: str = ""  # partial offload: -ngl / --n-cpu-moe
    host_bytes: int = 0  # weights kept in host RAM (partial offload)
    unit: str = "GPU"  # what one device is called: GPU, server (CPU) or machine

    @property
    def label(self) -> str:
        """Human name: '2x NVIDIA A100 80GB, awq-4bit-g128 on vllm'."""
        where = (
            f" ({self.llama_cpp_flags}, {self.host_bytes / 1e9:.1f} GB in RAM)"
            if self.llama_cpp_flags
            else ""
        )
        return f"{self.gpus}x {self.gpu_name}, {self.format} on {self.engine}{where}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, LoadPoint):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        out["label"] = self.label
        return out


@dataclass(frozen=True)
class Verdict:
    """Self-hosting against a hosted API at this volume."""

    api: str
    api_usd_per_million_tokens: float
    api_usd_per_month: float
    self_hosted_usd_per_month: float
    cheaper: str  # "api", "self-hosted" or "equal"
    difference_usd_per_month: float
    break_even_tokens_per_month: float | None
    replica_tokens_per_month: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class CapacityReport:
    """The recommendation, the cheapest candidates, the closest miss, the verdict."""

    model: str
    workload: Workload
    targets: Targets
    requests_per_s: float
    tokens_per_month: float
    recommendation: Candidate | None
    reasons: list[str]
    why_none: str | None
    closest: Candidate | None
    candidates: list[Candidate]
    per_gpu: list[Candidate]
    verdict: Verdict | None
    curve: list[LoadPoint]
    searched: int
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the whole report."""
        return {
            "model": self.model,
            "workload": dict(self.workload.__dict__),
            "targets": dict(self.targets.__dict__),
            "requests_per_s": self.requests_per_s,
            "tokens_per_month": self.tokens_per_month,
            "recommendation": self.recommendation.to_dict()
            if self.recommendation
            else None,
            "reasons": list(self.reasons),
            "why_none": self.why_none,
            "closest": self.closest.to_dict() if self.closest else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "per_gpu": [c.to_dict() for c in self.per_gpu],
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "curve": [p.to_dict() for p in self.curve],
            "searched": self.searched,
            "assumptions": list(self.assumptions),
        }


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise CapacityError(
            f"{name}: must be a {'non-negative' if allow_zero else 'positive'} number, "
            f"got {value!r}"
        )


def validate_capacity(req: CapacityRequest) -> list[FormatSpec]:
    """Check a request; return the formats to search."""
    w, t = req.workload, req.targets
    if w.requests_per_s is None and w.tokens_per_month is None:
        raise CapacityError(
            "give the traffic: requests_per_s, or tokens_per_month with the hours a "
            "day it arrives"
        )
    _positive("requests_per_s", w.requests_per_s, allow_zero=True)
    _positive("tokens_per_month", w.tokens_per_month, allow_zero=True)
    if (w.requests_per_s or 0) > MAX_REQUESTS_PER_S:
        raise CapacityError(
            f"requests_per_s: {w.requests_per_s} is above {MAX_REQUESTS_PER_S:g}"
        )
    for name in ("prompt_tokens", "output_tokens"):
        value = getattr(w, name)
        low = 0 if name == "prompt_tokens" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise CapacityError(f"{name}: must be a whole number >= {low}")
    for name in ("hours_per_day", "billed_hours_per_day"):
        value = getattr(w, name)
        if not isinstance(value, int | float) or not 0 < value <= 24:
            raise CapacityError(f"{name}: must be above 0 and at most 24")
    if w.billed_hours_per_day < w.hours_per_day:
        raise CapacityError(
            "billed_hours_per_day: the deployment must be up at least the "
            f"{w.hours_per_day:g} hours a day the traffic arrives"
        )
    _positive("max_ttft_s", t.max_ttft_s)
    _positive("max_tpot_ms", t.max_tpot_ms)
    _positive("min_tokens_per_s", t.min_tokens_per_s)
    _positive("max_quality_loss_pct", t.max_quality_loss_pct, allow_zero=True)
    _positive("price_usd_per_hour", req.price_usd_per_hour, allow_zero=True)
    _positive("electricity_usd_per_kwh", req.electricity_usd_per_kwh, allow_zero=True)
    if not req.gpus:
        raise CapacityError("gpus: give at least one GPU type")
    try:
        normalize_cache_dtype(req.kv_cache_dtype)
    except CacheDtypeError as exc:
        raise CapacityError(str(exc)) from None
    for n in req.gpu_counts:
        if n not in TENSOR_PARALLEL_SIZES:
            raise CapacityError(
                f"gpu_counts: {n} is not one of {TENSOR_PARALLEL_SIZES} (one node)"
            )
    if req.formats is None:
        return list_formats()
    if isinstance(req.formats, str) or not req.formats:
        raise CapacityError("formats: give a list of formats, or none for all")
    out: list[FormatSpec] = []
    for text in req.formats:
        try:
            f = parse_format(text)
        except FormatError as exc:
            raise CapacityError(f"formats: {exc}") from None
        if f not in out:
            out.append(f)
    return out


def _api_for(req: CapacityRequest) -> ApiPrice | None:
    if req.api_price_id is not None:
        try:
            return get_api_price(req.api_price_id)
        except CatalogError as exc:
            raise CapacityError(f"api_price_id: {exc}") from None
    w = req.workload
    comparable = [p for p in load_api_prices() if req.model.model_id in p.comparable_to]
    if not comparable:
        return None
    return min(
        comparable,
        key=lambda p: api_blended_usd_per_million(p, w.prompt_tokens, w.output_tokens),
    )


def _violations(point: LoadPoint, t: Targets) -> list[tuple[float, str]]:
    """(measured/target ratio, text) for each target the point misses."""
    out: list[tuple[float, str]] = []
    if t.max_ttft_s is not None and point.ttft_p95_s > t.max_ttft_s:
        out.append(
            (
                point.ttft_p95_s / t.max_ttft_s,
                f"time to first token p95 {point.ttft_p95_s:.2f} s > {t.max_ttft_s:g} s",
            )
        )
    tpot_ms = point.tpot_p95_s * 1e3
    if t.max_tpot_ms is not None and tpot_ms > t.max_tpot_ms:
        out.append(
            (
                tpot_ms / t.max_tpot_ms,
                f"time per output token p95 {tpot_ms:.1f} ms > {t.max_tpot_ms:g} ms",
            )
        )
    if (
        t.min_tokens_per_s is not None
        and point.tokens_per_s_per_user < t.min_tokens_per_s
    ):
        out.append(
            (
                t.min_tokens_per_s / max(point.tokens_per_s_per_user, 1e-9),
                f"{point.tokens_per_s_per_user:.1f} tokens/s per user < "
                f"{t.min_tokens_per_s:g}",
            )
        )
    return out


def _slots_for(n: int) -> int:
    """Sequence slots that hold ``n`` in flight at p95 (Poisson)."""
    return n if n <= 1 else math.ceil(n + Z95 * math.sqrt(n))


def _meets(m: StepModel, n: int, w: Workload, t: Targets) -> bool:
    """Whether ``n`` requests in flight meet every latency target (p95)."""
    ttft_p95, tpot_p95 = p95_latency(m, n, w.prompt_tokens, w.output_tokens)
    if t.max_ttft_s is not None and ttft_p95 > t.max_ttft_s:
        return False
    if t.max_tpot_ms is not None and tpot_p95 * 1e3 > t.max_tpot_ms:
        return False
    return not (t.min_tokens_per_s is not None and 1 / tpot_p95 < t.min_tokens_per_s)


def _highest_concurrency(
    m: StepModel, mem_slots: int, w: Workload, t: Targets
) -> tuple[int, LoadPoint, str]:
    """Most requests in flight meeting the targets, its load point, and what caps it."""

    def at(n: int) -> LoadPoint:
        return load_point(
            m,
            concurrency=n,
            prompt_tokens=w.prompt_tokens,
            output_tokens=w.output_tokens,
        )

    slots = min(mem_slots, MAX_SEQUENCES)
    # Largest n whose p95 in flight, n + z sqrt(n), fits the slots.
    root = (-Z95 + math.sqrt(Z95 * Z95 + 4 * slots)) / 2
    high = max(1, int(root * root) + 1)
    while high > 1 and _slots_for(high) > slots:
        high -= 1
    if not _meets(m, 1, w, t):
        first = at(1)
        return 0, first, "; ".join(v[1] for v in _violations(first, t))
    if _meets(m, high, w, t):
        cap = (
            f"memory: KV cache for {slots} sequences"
            if mem_slots <= MAX_SEQUENCES
            else f"the engine's {MAX_SEQUENCES}-sequence limit"
        )
        return high, at(high), cap
    low, bad = 1, high
    while bad - low > 1:
        mid = (low + bad) // 2
        if _meets(m, mid, w, t):
            low = mid
        else:
            bad = mid
    return low, at(low), "; ".join(v[1] for v in _violations(at(bad), t))


def _engine_for(fmt: FormatSpec, gpu: GpuSpec) -> str | None:
    if fmt.family == "gguf":
        return "llama.cpp"
    return "vllm" if gpu.kind == "gpu" else None


def _evaluate(
    req: CapacityRequest,
    fmt: FormatSpec,
    gpu: GpuSpec,
    gpus: int,
    engine: str,
    usd: float | None,
    price_source: str,
    quality: float | None,
    rate: float,
    tokens_month: float,
) -> Candidate | None:
    spec, w = req.model, req.workload
    if engine == "vllm" and not valid_tensor_parallel(spec, gpus):
        return None
    loaded, warnings, blockers = engine_support(fmt, gpu, engine)
    if blockers or any("relies on CUDA kernels" in w for w in warnings):
        # A format whose kernels are CUDA-only is not offered on AMD or Intel.
        return None
    weights, activation, overhead, _host = _fixed_bytes(spec, loaded, gpu, engine, gpus)
    fixed = weights + activation + overhead
    budget = budget_bytes_per_gpu(gpu, engine, req.gpu_memory_utilization)
    context = w.prompt_tokens + w.output_tokens
    per_seq = kv_cache_bytes_per_gpu(
        spec,
        engine=engine,
        gpus=gpus,
        context_tokens=context,
        sequences=1,
        cache_dtype=req.kv_cache_dtype,
    )
    mem_slots = int((budget - fixed) // per_seq) if per_seq > 0 else MAX_SEQUENCES
    base = Candidate(
        gpu=gpu.id,
        gpu_name=gpu.name,
        unit=gpu.unit,
        gpus=gpus,
        format=fmt.id,
        engine=engine,
        tensor_parallel=gpus if engine == "vllm" else 1,
        memory_max_concurrency=max(0, mem_slots),
        usd_per_gpu_hour=usd,
        price_source=price_source,
        quality_loss_pct=quality,
        total_bytes_per_gpu=fixed + per_seq,
        budget_bytes_per_gpu=budget,
        warnings=tuple(warnings),
        meets_targets=False,
        concurrency=0,
        load=None,
        replicas=0,
        usd_per_month=None,
        usd_per_million_tokens=None,
        replica_tokens_per_month=0.0,
        limited_by="",
    )
    offload = None
    if mem_slots < 1 and engine == "llama.cpp" and gpu.kind == "gpu" and gpus == 1:
        offload = offload_plan(
            spec,
            loaded,
            gpu,
            context_tokens=context,
            sequences=1,
            cache_dtype=normalize_cache_dtype(req.kv_cache_dtype),
        )
        if offload is not None:
            mem_slots = 1  # one sequence slot, as planned
            base = replace(
                base,
                memory_max_concurrency=1,
                llama_cpp_flags=offload.flags,
                host_bytes=offload.host_weight_bytes,
                total_bytes_per_gpu=offload.gpu_bytes,
                warnings=(
                    *base.warnings,
                    f"partial offload: {offload.host_weight_bytes / 1e9:.1f} GB of "
                    "weights in host RAM, read at host bandwidth",
                ),
            )
    if mem_slots < 1:
        return replace(
            base,
            limited_by=(
                f"memory: needs {(fixed + per_seq) / 1e9:.1f} GB per device for one "
                f"sequence of {context:,} tokens, {budget / 1e9:.1f} GB usable"
            ),
            shortfall=(fixed + per_seq) / max(budget, 1),
        )
    m = step_model(
        spec,
        loaded,
        gpu,
        engine=engine,
        gpus=gpus,
        cache_dtype=normalize_cache_dtype(req.kv_cache_dtype),
        offload=offload,
    )
    n, point, limit = _highest_concurrency(m, mem_slots, w, req.targets)
    hours = w.billed_hours_per_day * DAYS_PER_MONTH
    if n == 0:
        worst = max(v[0] for v in _violations(point, req.targets))
        return replace(
            base,
            load=point,
            limited_by=f"at 1 request in flight: {limit}",
            shortfall=worst,
        )
    replicas = max(1, math.ceil(rate / point.requests_per_s - 1e-9))
    month = replicas * gpus * usd * hours if usd is not None else None
    per_million = (
        month / tokens_month * 1e6 if month is not None and tokens_month > 0 else None
    )
    replica_tokens = (
        point.requests_per_s
        * (w.prompt_tokens + w.output_tokens)
        * 3600
        * w.hours_per_day
        * DAYS_PER_MONTH
    )
    return replace(
        base,
        meets_targets=True,
        concurrency=n,
        load=point,
        replicas=replicas,
        usd_per_month=month,
        usd_per_million_tokens=per_million,
        replica_tokens_per_month=replica_tokens,
        limited_by=limit,
    )


def _cost_key(c: Candidate) -> tuple[int, float, float, str, int, str]:
    """Cheapest first; then better quality; then a stable order by name."""
    if c.usd_per_month is not None:
        return (0, c.usd_per_month, c.quality_loss_pct or 0.0, c.gpu, c.gpus, c.format)
    # No price: fewest GPUs, then quality.
    return (
        1,
        float(c.replicas * c.gpus),
        c.quality_loss_pct or 0.0,
        c.gpu,
        c.gpus,
        c.format,
    )


def _verdict(
    best: Candidate, api: ApiPrice | None, w: Workload, tokens_month: float
) -> Verdict | None:
    if api is None or best.usd_per_month is None or best.usd_per_gpu_hour is None:
        return None
    blended = api_blended_usd_per_million(api, w.prompt_tokens, w.output_tokens)
    api_month = tokens_month * blended / 1e6
    ours = best.usd_per_month
    replica_month = ours / best.replicas
    break_even = replica_month / blended * 1e6 if blended > 0 else None
    cap = best.replica_tokens_per_month
    diff = abs(api_month - ours)
    if math.isclose(api_month, ours, rel_tol=1e-3):
        cheaper, text = "equal", "at your volume the API and self-hosting cost the same"
    elif api_month < ours:
        cheaper = "api"
        text = (
            f"at your volume ({tokens_month / 1e6:,.0f}M tokens/month) the API "
            f"({api.provider} {api.model}) is cheaper by {diff:,.0f} USD/month "
            f"({api_month:,.0f} vs {ours:,.0f})"
        )
    else:
        cheaper = "self-hosted"
        text = (
            f"at your volume ({tokens_month / 1e6:,.0f}M tokens/month) self-hosting "
            f"is cheaper by {diff:,.0f} USD/month ({ours:,.0f} vs {api_month:,.0f} "
            f"for {api.provider} {api.model})"
        )
    if break_even is not None:
        if break_even > cap:
            text += (
                f"; one replica serves at most {cap / 1e6:,.0f}M tokens/month within "
                f"your targets, fewer than the {break_even / 1e6:,.0f}M it would take "
                "to beat the API, so the API stays cheaper at any volume (each replica "
                "adds the same cost per token)"
            )
        else:
            text += (
                f"; one replica ({replica_month:,.0f} USD/month) beats the API from "
                f"{break_even / 1e6:,.0f}M tokens/month and serves up to "
                f"{cap / 1e6:,.0f}M within your targets"
            )
    return Verdict(
        api=api.id,
        api_usd_per_million_tokens=blended,
        api_usd_per_month=api_month,
        self_hosted_usd_per_month=ours,
        cheaper=cheaper,
        difference_usd_per_month=diff,
        break_even_tokens_per_month=break_even,
        replica_tokens_per_month=cap,
        text=text,
    )


def _assumptions(req: CapacityRequest, api: ApiPrice | None) -> list[str]:
    w = req.workload
    return [
        "latency: continuous batching with chunked prefill; one step = max(bytes "
        "read / bandwidth, FLOPs / usable FLOP/s) + per-layer and per-step floors + "
        "tensor-parallel all-reduce (planner/engine/latency.py); estimates, not "
        "measurements",
        f"step token budget: vLLM {STEP_TOKEN_BUDGET['vllm']} "
        f"(max_num_batched_tokens), llama.cpp {STEP_TOKEN_BUDGET['llama.cpp']} "
        f"(n_batch); at most {MAX_SEQUENCES} sequences per replica",
        "p95: requests in flight are Poisson around their mean (M/G/inf); p95 "
        f"latencies are evaluated at n + {Z95} sqrt(n) in flight, and memory holds "
        "that many sequences",
        "search: deployments whose one-replica price cannot beat the cheapest found "
        "(nor their own GPU type's cheapest) are bounded out, not evaluated",
        "formats whose kernels are CUDA-only (GPTQ, AWQ, int8) are not searched on "
        "AMD or Intel accelerators; fp8 is, where the device computes it natively",
        "engines: vLLM (tensor parallel) for safetensors formats, llama.cpp (layers "
        "split, one GPU at a time) for GGUF; GGUF on vLLM is not searched",
        f"prompt {w.prompt_tokens} and output {w.output_tokens} tokens per request; "
        f"traffic {w.hours_per_day:g} h/day, deployment up "
        f"{w.billed_hours_per_day:g} h/day and paid for all of them, "
        f"{DAYS_PER_MONTH:.2f} days/month",
        "formats losing more than "
        f"{quality_limit_pct(req.targets.max_quality_loss_pct):g}"
        "% perplexity (published estimates) are not recommended",
        (
            f"API compared: {api.provider} {api.model} ({api.date}, {api.source})"
            if api is not None
            else "no comparable API price listed for this model; give api_price_id"
        ),
    ]


def capacity_search(req: CapacityRequest) -> CapacityReport:
    """Search GPU type x count x format x engine for the cheapest that meets targets."""
    formats = validate_capacity(req)
    api = _api_for(req)
    w = req.workload
    window = req.model.max_position_embeddings
    context = w.prompt_tokens + w.output_tokens
    over_window = context > window
    if over_window:
        # Search the longest request the model can take, and say so.
        share = window / context
        prompt = max(0, int(w.prompt_tokens * share))
        w = Workload(
            requests_per_s=w.requests_per_s,
            tokens_per_month=w.tokens_per_month,
            prompt_tokens=prompt,
            output_tokens=max(1, window - prompt),
            hours_per_day=w.hours_per_day,
            billed_hours_per_day=w.billed_hours_per_day,
        )
        req = CapacityRequest(**{**req.__dict__, "workload": w})
    rate = w.rate_per_s()
    hours = w.billed_hours_per_day * DAYS_PER_MONTH
    tokens_month = w.tokens_served_per_month()
    max_q_pct = req.targets.max_quality_loss_pct
    quality: dict[str, float | None] = {}
    # Priors for this model's family and size, as plans use them.
    family = quality_family(req.model.model_id, req.model.name, req.model.model_type)
    parameters = parameter_breakdown(req.model).total
    for f in formats:
        value = expected_quality_loss(f, family=family, parameters=parameters).get(
            "perplexity_increase_pct"
        )
        quality[f.id] = float(value) if value is not None else None
    meeting: list[Candidate] = []
    missing: list[Candidate] = []
    combos: list[tuple[float, GpuSpec, float | None, str, FormatSpec, str, int]] = []
    for gpu in req.gpus:
        usd, source = hourly_price_usd(
            gpu,
            provider=req.provider,
            override_usd_per_hour=req.price_usd_per_hour,
            usd_per_kwh=req.electricity_usd_per_kwh,
        )
        counts = [n for n in req.gpu_counts if gpu.kind == "gpu" or n == 1]
        for fmt in formats:
            engine = _engine_for(fmt, gpu)
            q = quality[fmt.id]
            if engine is None or q is None or exceeds_quality_limit(q, max_q_pct):
                continue
            for n in counts:
                floor = n * usd * hours if usd is not None else math.inf
                combos.append((floor, gpu, usd, source, fmt, engine, n))
    # Branch and bound: cheapest floors first (one replica's price); a deployment
    # whose floor cannot beat the K-th cheapest found, nor the cheapest of its own
    # GPU type, is not evaluated.
    combos.sort(key=lambda c: c[0])
    kth: list[float] = []  # max-heap (negated) of the K cheapest monthly costs
    best_of: dict[str, float] = {}
    for floor, gpu, usd, source, fmt, engine, n in combos:
        if (
            len(kth) >= req.max_candidates
            and floor > -kth[0]
            and floor > best_of.get(gpu.id, math.inf)
        ):
            continue
        cand = _evaluate(
            req, fmt, gpu, n, engine, usd, source, quality[fmt.id], rate, tokens_month
        )
        if cand is None:
            continue
        if not cand.meets_targets:
            missing.append(cand)
            continue
        meeting.append(cand)
        if cand.usd_per_month is not None:
            cost = cand.usd_per_month
            best_of[gpu.id] = min(cost, best_of.get(gpu.id, math.inf))
            if len(kth) < req.max_candidates:
                heapq.heappush(kth, -cost)
            elif cost < -kth[0]:
                heapq.heapreplace(kth, -cost)
    searched = len(combos)
    meeting.sort(key=_cost_key)
    per_gpu: dict[str, Candidate] = {}
    for c in meeting:
        per_gpu.setdefault(c.gpu, c)
    for c in sorted(missing, key=lambda c: (c.load is None, c.shortfall)):
        per_gpu.setdefault(c.gpu, c)
    # A deployment that runs but misses a latency target is closer than one that
    # does not fit at all.
    closest = (
        min(missing, key=lambda c: (c.load is None, c.shortfall, _cost_key(c)))
        if missing
        else None
    )
    best: Candidate | None = None
    reasons: list[str] = []
    why_none: str | None = None
    if meeting:
        cheapest = _cost_key(meeting[0])
        tied = [
            c
            for c in meeting
            if c.usd_per_month is not None
            and cheapest[0] == 0
            and c.usd_per_month <= cheapest[1] * (1 + COST_TIE_FRACTION)
        ] or [meeting[0]]
        best = min(tied, key=lambda c: (c.quality_loss_pct or 0.0, _cost_key(c)))
        reasons = _reasons(best, len(meeting), rate)
    else:
        why_none = "no configuration meets the targets"
        if closest is not None:
            why_none += (
                f"; the closest is {closest.label}, limited by {closest.limited_by}"
            )
        if not missing:
            why_none += "; no format within the quality limit runs on these devices"
    if over_window:
        why_none = (
            f"prompt + output = {context:,} tokens is beyond {req.model.name}'s "
            f"{window:,}-token window: shorten the request to at most {window:,} "
            "tokens"
            + (
                f"; at {w.prompt_tokens:,} + {w.output_tokens:,} tokens the cheapest "
                f"is {best.label}"
                if best
                else ""
            )
        )
        closest, best, reasons = best or closest, None, []
    if best is not None and rate == 0:
        reasons.append(
            "no traffic given: one replica, cost per token undefined (shown per month)"
        )
    verdict = _verdict(best, api, w, tokens_month) if best and tokens_month else None
    shown = best or closest
    curve: list[LoadPoint] = []
    if shown is not None and shown.load is not None:
        gpu = next(g for g in req.gpus if g.id == shown.gpu)
        loaded, _w, _b = engine_support(parse_format(shown.format), gpu, shown.engine)
        m = step_model(req.model, loaded, gpu, engine=shown.engine, gpus=shown.gpus)
        top = max(1, min(MAX_SEQUENCES, shown.memory_max_concurrency))
        levels = tuple(c for c in (1, 2, 4, 8, 16, 32, 64, 128, 256) if c <= top)
        curve = load_curve(
            m,
            prompt_tokens=w.prompt_tokens,
            output_tokens=w.output_tokens,
            concurrencies=levels,
        )
    return CapacityReport(
        model=req.model.model_id,
        workload=req.workload,
        targets=req.targets,
        requests_per_s=rate,
        tokens_per_month=tokens_month,
        recommendation=best,
        reasons=reasons,
        why_none=why_none,
        closest=closest if best is None else None,
        candidates=meeting[: req.max_candidates],
        per_gpu=sorted(
            per_gpu.values(), key=lambda c: (not c.meets_targets, _cost_key(c))
        ),
        verdict=verdict,
        curve=curve,
        searched=searched,
        assumptions=_assumptions(req, api),
    )


def _reasons(best: Candidate, meeting: int, rate: float) -> list[str]:
    assert best.load is not None
    p = best.load
    out = [
        f"cheapest of {meeting} deployments that meet the targets"
        + (
            f": {best.usd_per_month:,.0f} USD/month"
            if best.usd_per_month is not None
            else f" (no price known: fewest {best.unit}s)"
        ),
        f"{best.replicas} replica(s) of {best.gpus}x {best.gpu_name} for "
        f"{rate:g} requests/s; each holds up to {best.concurrency} requests in flight "
        f"({p.requests_per_s:.2f} requests/s) within the targets, limited by "
        f"{best.limited_by}",
        f"at that load: time to first token p95 {p.ttft_p95_s:.2f} s, time per "
        f"output token p95 {p.tpot_p95_s * 1e3:.1f} ms "
        f"({p.tokens_per_s_per_user:.0f} tokens/s per user), "
        f"{p.output_tokens_per_s:,.0f} output tokens/s per replica (estimates)",
    ]
    if best.usd_per_million_tokens is not None:
        out.append(
            f"{best.usd_per_million_tokens:.3f} USD per 1M tokens at your traffic, "
            "idle hours included"
        )
    if best.quality_loss_pct is not None:
        out.append(f"expected perplexity increase {best.quality_loss_pct:.2f}%")
    return out
