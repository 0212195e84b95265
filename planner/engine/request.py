"""What a plan is asked: ``PlanRequest``, its validation, and engine support."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calibration import FormatMeasurement, SpeedCalibration
from .catalog import ApiPrice, CatalogError, GpuSpec, get_api_price
from .cost import MAX_ELECTRICITY_USD_PER_KWH
from .formats import FormatError, FormatSpec, parse_format
from .kv_cache import CacheDtypeError, normalize_cache_dtype
from .runtime import ENGINES, TENSOR_PARALLEL_SIZES
from .spec import ModelSpec

MAX_CONTEXT_TOKENS = 10_000_000
MAX_CONCURRENCY = 100_000
DEFAULT_FORMATS = (
    "bf16",
    "fp8",
    "int8",
    "awq-4bit-g128",
    "gptq-4bit-g128",
    "gguf-Q8_0",
    "gguf-Q6_K",
    "gguf-Q5_K_M",
    "gguf-Q4_K_M",
    "gguf-IQ4_XS",
    "gguf-Q3_K_M",
)
_VLLM_CACHE_DTYPES = frozenset({"f16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2", "f32"})
_LLAMA_CPP_CACHE_DTYPES = frozenset({"f16", "bf16", "f32", "q8_0", "q4_0"})
_VLLM_GGUF_UNSUPPORTED = frozenset({"TQ1_0", "TQ2_0", "MXFP4_MOE"})
_GGUF_EQUIVALENT = {"fp32": "gguf-F32", "fp16": "gguf-F16", "bf16": "gguf-BF16"}


class PlanError(ValueError):
    """A workload that cannot be planned; the message says what to change."""


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: a model, a GPU, formats, a workload, limits and overrides."""

    model: ModelSpec
    gpu: GpuSpec
    gpus: int | None = None  # None: the fewest that fit
    formats: Sequence[str] = DEFAULT_FORMATS
    context_tokens: int = 4096
    concurrency: int = 1
    engine: str = "vllm"
    utilization: float = 0.5  # share of the month spent serving at this concurrency
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "f16"
    prompt_tokens: int = 1024
    output_tokens: int = 256
    api_price_id: str | None = None
    price_usd_per_hour: float | None = None  # per GPU; overrides the catalog price
    provider: str | None = None
    # Owning ("owned" provider): electricity price; None: the stated default.
    electricity_usd_per_kwh: float | None = None
    max_quality_loss_pct: float | None = None
    min_tokens_per_s: float | None = None
    max_ttft_s: float | None = None
    measured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # From the calibration ledger, looked up by the caller (the engine never
    # queries): what was measured of this model, and speed fits per device.
    measurements: Sequence[FormatMeasurement] = ()
    calibrations: Sequence[SpeedCalibration] = ()
    device_key: str = ""  # the ledger's name for ``gpu`` (a worker's); "" otherwise


def _check_int(name: str, value: object, low: int, high: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{name}: must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise PlanError(f"{name}: {value} is out of range ({low} to {high:,}); {hint}")
    return value


def _check_fraction(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 < float(value) <= 1)
    ):
        raise PlanError(
            f"{name}: must be a number above 0 and at most 1, got {value!r}"
        )
    return float(value)


def _check_limit(name: str, value: float | None) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise PlanError(
            f"{name}: must be a non-negative number or empty, got {value!r}"
        )


def validate_request(req: PlanRequest) -> tuple[list[FormatSpec], str, ApiPrice | None]:
    """Check a request; return its parsed formats, cache dtype and API price."""
    _check_int(
        "context_tokens",
        req.context_tokens,
        1,
        MAX_CONTEXT_TOKENS,
        "give the tokens of prompt and answer a sequence may hold",
    )
    _check_int(
        "concurrency",
        req.concurrency,
        1,
        MAX_CONCURRENCY,
        "give how many sequences are served at once",
    )
    _check_int("prompt_tokens", req.prompt_tokens, 0, MAX_CONTEXT_TOKENS, "")
    _check_int("output_tokens", req.output_tokens, 1, MAX_CONTEXT_TOKENS, "")
    if req.prompt_tokens + req.output_tokens > req.context_tokens:
        raise PlanError(
            f"prompt_tokens + output_tokens ({req.prompt_tokens + req.output_tokens}) exceed "
            f"context_tokens ({req.context_tokens}); raise the context or shorten the request"
        )
    if req.engine not in ENGINES:
        raise PlanError(
            f"engine: must be one of {', '.join(ENGINES)}, got {req.engine!r}"
        )
    if req.gpus is not None:
        allowed = TENSOR_PARALLEL_SIZES if req.gpu.kind == "gpu" else (1,)
        if req.gpus not in allowed or isinstance(req.gpus, bool):
            raise PlanError(
                f"gpus: must be one of {', '.join(map(str, allowed))} for a {req.gpu.kind} "
                f"(one node; multi-node serving is not modelled), got {req.gpus!r}"
            )
    _check_fraction("utilization", req.utilization)
    _check_fraction("gpu_memory_utilization", req.gpu_memory_utilization)
    for name in (
        "max_quality_loss_pct",
        "min_tokens_per_s",
        "max_ttft_s",
        "price_usd_per_hour",
        "electricity_usd_per_kwh",
    ):
        _check_limit(name, getattr(req, name))
    if (req.electricity_usd_per_kwh or 0) > MAX_ELECTRICITY_USD_PER_KWH:
        raise PlanError(
            f"electricity_usd_per_kwh: at most {MAX_ELECTRICITY_USD_PER_KWH:g} USD/kWh, "
            f"got {req.electricity_usd_per_kwh!r}"
        )
    try:
        cache = normalize_cache_dtype(req.kv_cache_dtype)
    except CacheDtypeError as exc:
        raise PlanError(str(exc)) from None
    allowed_cache = (
        _VLLM_CACHE_DTYPES if req.engine == "vllm" else _LLAMA_CPP_CACHE_DTYPES
    )
    if cache not in allowed_cache:
        raise PlanError(
            f"kv_cache_dtype {cache!r} is not available in {req.engine}; use one "
            f"of {', '.join(sorted(allowed_cache))}"
        )
    if isinstance(req.formats, str) or not req.formats:
        raise PlanError(
            "formats: give a list of one or more formats, e.g. ['gguf-Q4_K_M']"
        )
    formats: list[FormatSpec] = []
    seen: set[str] = set()
    for text in req.formats:
        try:
            f = parse_format(text)
        except FormatError as exc:
            raise PlanError(f"formats: {exc}") from None
        if f.id not in seen:
            seen.add(f.id)
            formats.append(f)
    api = None
    if req.api_price_id is not None:
        try:
            api = get_api_price(req.api_price_id)
        except CatalogError as exc:
            raise PlanError(f"api_price_id: {exc}") from None
    return formats, cache, api


def engine_support(
    fmt: FormatSpec, gpu: GpuSpec, engine: str
) -> tuple[FormatSpec, list[str], list[str]]:
    """(format the engine loads, warnings, blocking reasons) for ``fmt`` on ``gpu``."""
    warnings: list[str] = []
    blockers: list[str] = []
    if engine == "llama.cpp":
        if fmt.id in _GGUF_EQUIVALENT:
            warnings.append(
                f"llama.cpp loads GGUF: {fmt.id} is sized as {_GGUF_EQUIVALENT[fmt.id]}"
            )
            return parse_format(_GGUF_EQUIVALENT[fmt.id]), warnings, blockers
        if fmt.family != "gguf":
            blockers.append(
                f"llama.cpp cannot load {fmt.id}; choose a GGUF format such as "
                "gguf-Q4_K_M, or the vllm engine"
            )
        return fmt, warnings, blockers
    if gpu.kind != "gpu":
        blockers.append(
            f"vLLM is planned for GPUs only; on a {gpu.kind} machine use the "
            "llama.cpp engine with a GGUF format"
        )
    if fmt.family == "gguf":
        if fmt.gguf_type in _VLLM_GGUF_UNSUPPORTED:
            blockers.append(
                f"vLLM's GGUF loader has no kernels for {fmt.gguf_type}; use llama.cpp"
            )
        else:
            warnings.append(
                "vLLM's GGUF support is experimental (single file, not every "
                "architecture); llama.cpp is the usual engine for GGUF"
            )
    native_fp8 = fmt.id == "fp8" and bool(gpu.tflops_for("fp8"))
    if fmt.needs_cuda and gpu.kind == "gpu" and gpu.vendor != "nvidia":
        if not native_fp8:
            warnings.append(
                f"{fmt.id} relies on CUDA kernels; on {gpu.vendor} support is "
                "partial or missing"
            )
    if fmt.id == "fp8" and gpu.kind == "gpu" and not native_fp8:
        if gpu.vendor == "nvidia" and not gpu.tflops_for("bf16"):
            # No bf16 tensor cores marks a pre-Ampere part (T4, V100): vLLM's
            # weight-only fp8 (Marlin) kernels need compute capability 8.0.
            blockers.append(
                f"{gpu.name} predates Ampere: vLLM has no fp8 kernels for it (native "
                "fp8 needs Ada/Hopper/Blackwell, weight-only fp8 needs Ampere); "
                "choose int8, AWQ or GPTQ"
            )
        else:
            warnings.append(
                f"{gpu.name} has no FP8 tensor cores: vLLM runs fp8 as weight-only "
                "(Marlin), so prefill computes in 16-bit"
            )
    if fmt.id == "fp32":
        warnings.append(
            "fp32 doubles memory and halves speed against bf16 with no quality gain"
        )
    return fmt, warnings, blockers
