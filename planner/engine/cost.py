"""Money: hourly and monthly price of a deployment, cost per token, break-even against
a hosted API, and the cost of the quantization job itself.

A dedicated deployment is paid for every hour of the month (730 h);
``utilization`` is the share of those hours it spends serving at the planned
concurrency, so cost per token = price per hour / tokens served per hour.
Input and output tokens are charged by the time they take: prefill time for the
prompt, decode time for the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .catalog import ApiPrice, GpuSpec
from .formats import FormatSpec
from .spec import ModelSpec
from .speed import SpeedEstimate, compute_tflops
from .tensors import parameter_breakdown
from .weights import weights_bytes

HOURS_PER_MONTH = 730

# Quantization job estimates (documented round numbers, not measurements).
DISK_BYTES_PER_S = 500e6  # reading and writing checkpoints
GGUF_QUANTIZE_INPUT_BYTES_PER_S = {
    "k": 150e6,
    "legacy": 300e6,
    "i": 40e6,
}  # 8 CPU cores
IMATRIX_CALIBRATION_TOKENS = 100_000  # ~200 chunks of 512 tokens
CALIBRATION_MFU = 0.3
# GPTQ quantizes 175B parameters in ~4 GPU hours on an A100 (Frantar et al., 2022);
# AWQ's search is of the same order. Scaled by the GPU's fp16 TFLOPS.
GPTQ_S_PER_BILLION_PARAMS_A100 = 82.0
AWQ_S_PER_BILLION_PARAMS_A100 = 90.0
FP8_S_PER_BILLION_PARAMS_A100 = 10.0  # per-tensor scales from a short calibration pass
A100_FP16_TFLOPS = 312.0
CALIBRATION_SAMPLES_TOKENS = 128 * 2048  # 128 samples of 2048 tokens
CPU_WORKER_USD_PER_HOUR = 0.40  # a 16-vCPU cloud VM for CPU-only jobs
# Owning (provider "owned"): the purchase price spread evenly over the device's
# depreciation period (catalog ``purchase.depreciation_months``, 36 by default), plus
# its power at TDP times a data-centre PUE, paid at an electricity price the request
# may set. Stated assumptions, not quotes; the purchase price itself is sourced per
# device.
OWNED_PROVIDER = "owned"
ELECTRICITY_USD_PER_KWH = 0.12  # default; a request's electricity_usd_per_kwh wins
MAX_ELECTRICITY_USD_PER_KWH = 10.0
DATACENTER_PUE = 1.3


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a deployment costs per hour, month and million tokens, and vs an API."""

    usd_per_hour: float | None
    usd_per_month: float | None
    usd_per_million_tokens: float | None
    usd_per_million_input_tokens: float | None
    usd_per_million_output_tokens: float | None
    price_source: str
    capacity_tokens_per_month: float
    api_usd_per_million_tokens: float | None = None
    break_even_tokens_per_month: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuantJobEstimate:
    """Time, memory and money to produce one artifact."""

    time_s: float
    gpu_memory_bytes: int
    host_memory_bytes: int
    disk_bytes: int
    usd: float | None
    needs_gpu: bool
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        out: dict[str, object] = {
            f: getattr(self, f) for f in self.__dataclass_fields__
        }
        out["steps"] = list(self.steps)
        return out


def hourly_price_usd(
    gpu: GpuSpec,
    *,
    provider: str | None = None,
    override_usd_per_hour: float | None = None,
    usd_per_kwh: float | None = None,
) -> tuple[float | None, str]:
    """Price of one GPU per hour and where it comes from (override, provider, cheapest)."""
    if override_usd_per_hour is not None:
        return float(override_usd_per_hour), "price given in the request"
    if provider == OWNED_PROVIDER:
        return owned_usd_per_hour(gpu, usd_per_kwh=usd_per_kwh)
    prices = [p for p in gpu.prices if provider is None or p.provider == provider]
    if not prices and provider is None and gpu.purchase is not None:
        # Nothing to rent (a Mac, an on-premises box): owning is the only price.
        owned, source = owned_usd_per_hour(gpu, usd_per_kwh=usd_per_kwh)
        return owned, f"{source} (no rental price listed)"
    if not prices:
        if provider is not None:
            return None, f"no {provider} price listed for {gpu.name}"
        return None, f"no price listed for {gpu.name}"
    best = min(prices, key=lambda p: p.usd_per_hour)
    when = f", {best.date}" if best.date else ""
    return (
        best.usd_per_hour,
        f"{best.provider} ({best.usd_per_hour:.2f} USD/h per {gpu.unit}{when})",
    )


@dataclass(frozen=True, slots=True)
class OwnedCost:
    """What owning one device costs a month: its depreciation plus its electricity."""

    depreciation_usd_per_month: float
    power_usd_per_month: float
    purchase_usd: float
    depreciation_months: int
    power_w: float
    usd_per_kwh: float
    hours_per_month: float
    lower_bound: bool

    @property
    def usd_per_month(self) -> float:
        """Depreciation plus electricity for the month."""
        return self.depreciation_usd_per_month + self.power_usd_per_month


def owned_cost_per_month(
    gpu: GpuSpec,
    *,
    hours_per_month: float = HOURS_PER_MONTH,
    usd_per_kwh: float | None = None,
) -> OwnedCost | None:
    """purchase / depreciation months + TDP x PUE x hours x USD/kWh; None if not sold.

    Depreciation accrues whether the device works or not; electricity only for the
    ``hours_per_month`` it runs (at TDP: an upper bound on the power it draws).
    """
    if gpu.purchase is None:
        return None
    kwh_price = ELECTRICITY_USD_PER_KWH if usd_per_kwh is None else float(usd_per_kwh)
    power_w = gpu.tdp_w or 0.0
    kwh_per_month = power_w / 1000 * DATACENTER_PUE * hours_per_month
    return OwnedCost(
        depreciation_usd_per_month=gpu.purchase.usd / gpu.purchase.depreciation_months,
        power_usd_per_month=kwh_per_month * kwh_price,
        purchase_usd=gpu.purchase.usd,
        depreciation_months=gpu.purchase.depreciation_months,
        power_w=power_w,
        usd_per_kwh=kwh_price,
        hours_per_month=hours_per_month,
        lower_bound=gpu.purchase.lower_bound,
    )


def owned_usd_per_hour(
    gpu: GpuSpec, *, usd_per_kwh: float | None = None
) -> tuple[float | None, str]:
    """Hourly cost of owning one device, running all month, and how it is made up."""
    owned = owned_cost_per_month(gpu, usd_per_kwh=usd_per_kwh)
    if owned is None or gpu.purchase is None:
        why = (
            "it is sold only as a cloud instance"
            if gpu.cloud_only
            else "no purchase price listed"
        )
        return None, f"cannot price owning {gpu.name}: {why}"
    per_hour = owned.usd_per_month / HOURS_PER_MONTH
    when = f", {gpu.purchase.date}" if gpu.purchase.date else ""
    floor = "at least " if owned.lower_bound else ""
    recalled = "; price recalled, not re-checked" if gpu.purchase.unverified else ""
    power = (
        f"{owned.power_w:g} W x PUE {DATACENTER_PUE:g} at {owned.usd_per_kwh:g} USD/kWh"
        if owned.power_w
        else "electricity not included (no power figure listed)"
    )
    return (
        per_hour,
        f"owned: {floor}{owned.purchase_usd:,.0f} USD{when} over "
        f"{owned.depreciation_months} months "
        f"({owned.depreciation_usd_per_month:,.0f} USD/month) + {power} "
        f"({owned.power_usd_per_month:,.0f} USD/month at {HOURS_PER_MONTH} h)"
        f"{recalled}",
    )


def api_blended_usd_per_million(
    api: ApiPrice, prompt_tokens: int, output_tokens: int
) -> float:
    """API price per million tokens for this prompt/output mix."""
    total = prompt_tokens + output_tokens
    if total <= 0:
        return 0.0
    return (
        prompt_tokens * api.usd_per_million_input_tokens
        + output_tokens * api.usd_per_million_output_tokens
    ) / total


def estimate_cost(
    speed: SpeedEstimate,
    *,
    usd_per_gpu_hour: float | None,
    price_source: str,
    gpus: int,
    utilization: float,
    prompt_tokens: int,
    output_tokens: int,
    api: ApiPrice | None = None,
) -> CostEstimate:
    """Cost per hour, month and million tokens, and the break-even volume vs ``api``."""
    notes: list[str] = []
    seconds_per_request = 0.0
    if speed.prefill_tokens_per_s > 0:
        seconds_per_request += prompt_tokens / speed.prefill_tokens_per_s
    if speed.total_decode_tokens_per_s > 0:
        seconds_per_request += output_tokens / speed.total_decode_tokens_per_s
    tokens_per_request = prompt_tokens + output_tokens
    capacity = (
        HOURS_PER_MONTH * 3600 / seconds_per_request * tokens_per_request
        if seconds_per_request > 0
        else 0.0
    )
    api_blended = (
        api_blended_usd_per_million(api, prompt_tokens, output_tokens)
        if api is not None
        else None
    )
    if usd_per_gpu_hour is None:
        notes.append(f"cost unknown: {price_source}; give price_usd_per_hour")
        return CostEstimate(
            None,
            None,
            None,
            None,
            None,
            price_source,
            capacity,
            api_blended,
            None,
            tuple(notes),
        )
    per_hour = usd_per_gpu_hour * gpus
    per_month = per_hour * HOURS_PER_MONTH
    busy_usd_per_s = per_hour / 3600 / max(utilization, 1e-9)
    per_input = (
        busy_usd_per_s / speed.prefill_tokens_per_s * 1e6
        if speed.prefill_tokens_per_s > 0
        else None
    )
    per_output = (
        busy_usd_per_s / speed.total_decode_tokens_per_s * 1e6
        if speed.total_decode_tokens_per_s > 0
        else None
    )
    blended = (
        busy_usd_per_s * seconds_per_request / tokens_per_request * 1e6
        if tokens_per_request and seconds_per_request
        else None
    )
    break_even = None
    if api_blended:
        break_even = per_month / api_blended * 1e6
        if break_even > capacity * utilization:
            notes.append(
                f"at {utilization:.0%} utilization this deployment serves "
                f"{capacity * utilization / 1e6:,.0f}M tokens a month, less than the "
                f"{break_even / 1e6:,.0f}M needed to beat the API price"
            )
    return CostEstimate(
        per_hour,
        per_month,
        blended,
        per_input,
        per_output,
        price_source,
        capacity,
        api_blended,
        break_even,
        tuple(notes),
    )


def _gguf_quantize_rate(fmt: FormatSpec) -> float:
    name = fmt.gguf_type or ""
    if name.startswith(("IQ", "TQ")):
        return GGUF_QUANTIZE_INPUT_BYTES_PER_S["i"]
    if "_K" in name:
        return GGUF_QUANTIZE_INPUT_BYTES_PER_S["k"]
    return GGUF_QUANTIZE_INPUT_BYTES_PER_S["legacy"]


def quantization_job_estimate(
    spec: ModelSpec, fmt: FormatSpec, gpu: GpuSpec, *, usd_per_gpu_hour: float | None
) -> QuantJobEstimate:
    """Estimated time, memory and cost to produce ``fmt`` from the 16-bit checkpoint."""
    tflops, _ = compute_tflops(gpu, "fp16")
    return _job(spec, fmt, gpu.kind, tflops, usd_per_gpu_hour)


@lru_cache(maxsize=4096)
def _job(
    spec: ModelSpec,
    fmt: FormatSpec,
    kind: str,
    tflops: float,
    usd_per_gpu_hour: float | None,
) -> QuantJobEstimate:
    params = parameter_breakdown(spec).total
    fp16_bytes = weights_bytes(spec, "fp16")
    out_bytes = weights_bytes(spec, fmt)
    billions = params / 1e9
    speedup = (tflops / A100_FP16_TFLOPS) if tflops and kind == "gpu" else 0.1
    steps: list[str] = ["download the 16-bit checkpoint"]
    time_s = fp16_bytes / DISK_BYTES_PER_S
    gpu_mem = 0
    host_mem = fp16_bytes
    needs_gpu = False
    if fmt.family == "gguf":
        steps.append("convert to a 16-bit GGUF")
        time_s += 2 * fp16_bytes / DISK_BYTES_PER_S
        if fmt.needs_imatrix:
            steps.append(
                f"compute an importance matrix over {IMATRIX_CALIBRATION_TOKENS:,} "
                "tokens"
            )
            flops = (
                2
                * parameter_breakdown(spec).matmul_per_token
                * IMATRIX_CALIBRATION_TOKENS
            )
            time_s += flops / max(tflops * 1e12 * CALIBRATION_MFU, 1e9)
            gpu_mem = fp16_bytes if kind == "gpu" else 0
            needs_gpu = kind == "gpu"
        if fmt.gguf_type not in ("F32", "F16", "BF16"):
            steps.append(f"llama-quantize to {fmt.gguf_type} on the CPU")
            time_s += fp16_bytes / _gguf_quantize_rate(fmt)
        host_mem = fp16_bytes + out_bytes
    elif fmt.family in ("gptq", "awq") or fmt.family == "int8":
        per_b = (
            AWQ_S_PER_BILLION_PARAMS_A100
            if fmt.family == "awq"
            else (GPTQ_S_PER_BILLION_PARAMS_A100)
        )
        steps.append(
            f"calibrate layer by layer on {CALIBRATION_SAMPLES_TOKENS:,} tokens"
        )
        time_s += billions * per_b / speedup
        # One decoder layer in fp16, its calibration activations and a Hessian.
        layer_bytes = (fp16_bytes - 2 * spec.vocab_size * spec.hidden_size) // max(
            1, spec.num_layers
        )
        acts = CALIBRATION_SAMPLES_TOKENS * spec.hidden_size * 2 * 4
        hessian = (
            max(spec.hidden_size, spec.intermediate_size, spec.moe_intermediate_size)
            ** 2
        )
        gpu_mem = (
            layer_bytes + acts + 4 * hessian + 2 * spec.vocab_size * spec.hidden_size
        )
        needs_gpu = True
    elif fmt.id == "fp8":
        steps.append("compute fp8 scales from a short calibration pass")
        time_s += billions * FP8_S_PER_BILLION_PARAMS_A100 / speedup
        gpu_mem = fp16_bytes // max(1, spec.num_layers) * 2
        needs_gpu = True
    elif fmt.family == "rtn":
        steps.append("round to nearest and pack (no calibration)")
        time_s += fp16_bytes / GGUF_QUANTIZE_INPUT_BYTES_PER_S["legacy"]
    steps.append("write and checksum the artifact")
    time_s += out_bytes / DISK_BYTES_PER_S
    rate = usd_per_gpu_hour if needs_gpu else CPU_WORKER_USD_PER_HOUR
    usd = time_s / 3600 * rate if rate is not None else None
    return QuantJobEstimate(
        time_s,
        int(gpu_mem),
        int(host_mem),
        int(fp16_bytes + out_bytes),
        usd,
        needs_gpu,
        tuple(steps),
    )
