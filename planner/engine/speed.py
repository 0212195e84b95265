"""Speed by roofline: prefill is compute-bound, decode is bandwidth-bound (mostly).

* TTFT = the longer of (prefill FLOPs / effective FLOP/s) and (one read of the
  weights / effective bandwidth). Prefill FLOPs = 2 * matmul params * prompt tokens
  + attention (2 * layers * heads * head_dim * prompt^2, causal).
* One decode step for ``concurrency`` sequences reads the weights once (for MoE
  only the experts the batch touches) plus every sequence's KV cache, and does
  2 * matmul params FLOPs per sequence; the step takes the longer of the two.

Efficiency factors below turn datasheet peaks into what engines reach; they are
round numbers from public benchmarks, not measurements of this deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import GpuSpec
from .formats import FormatSpec
from .kv_cache import kv_cache_bytes, normalize_cache_dtype
from .spec import ModelSpec
from .tensors import EMBEDDING, EXPERTS, parameter_breakdown
from .weights import weight_layout

# Share of peak dense TFLOPS reached during prefill (model FLOPs utilisation).
PREFILL_MFU = {"vllm": 0.5, "llama.cpp": 0.35}
# Share of peak memory bandwidth reached while decoding.
DECODE_BANDWIDTH_EFFICIENCY = {"vllm": 0.75, "llama.cpp": 0.65}
CPU_BANDWIDTH_EFFICIENCY = 0.6  # llama.cpp on many-core CPUs
CPU_PREFILL_MFU = 0.3
# Share of peak FLOPs reached by batched decode GEMMs (small M dimension).
DECODE_MFU = 0.35
# llama.cpp on a CPU runs a few decode tokens through its vec-dot kernels, at about
# half the efficiency of the prompt's tiled GEMM: measured with llama-server on 2
# EPYC cores (2026-12-02), a step took 20.6 ms for 1 sequence and 35.0 ms for 2
# (+14.4 ms a sequence) while a prompt cost 7.0 ms a token (bench/serving_load.py).
# Again on 2026-12-03, from streamed token times: decode-only steps took 9.5, 15-19,
# 23, 29, 36, 43, 49 and 49 ms for 1-8 sequences (+6.3 ms a sequence) while a
# prompt token cost 3.4-3.8 ms: 1.7-1.9x, linear in the sequences.
CPU_DECODE_MFU = CPU_PREFILL_MFU / 2
# Tensor parallelism loses this much per doubling to all-reduce (NVLink / PCIe).
TP_EFFICIENCY_PER_DOUBLING_NVLINK = 0.9
TP_EFFICIENCY_PER_DOUBLING_PCIE = 0.75
# Dequantizing kernels reach less bandwidth than plain 16-bit GEMV.
KERNEL_BANDWIDTH_FACTOR = {
    "fp": 1.0,
    "int8": 0.95,
    "gptq": 0.9,
    "awq": 0.9,
    "rtn": 0.9,
    "gguf": 0.9,
}

_COMPUTE_FALLBACK = {
    "fp32": ("fp32", "tf32", "fp16"),
    "fp16": ("fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp8": ("fp8", "fp16", "bf16", "fp32"),
    "int8": ("int8", "fp16", "bf16", "fp32"),
}


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    """Roofline speed of one deployment at one workload."""

    ttft_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    total_decode_tokens_per_s: float
    decode_step_s: float
    decode_bound: str  # "memory" or "compute"
    compute_dtype: str
    assumptions: tuple[str, ...] = ()


def compute_tflops(gpu: GpuSpec, dtype: str) -> tuple[float, str]:
    """Peak dense TFLOPS for ``dtype`` on ``gpu``, falling back to a wider dtype."""
    for candidate in _COMPUTE_FALLBACK.get(dtype, (dtype, "fp16", "bf16", "fp32")):
        value = gpu.tflops_for(candidate)
        if value:
            return value, candidate
    return 0.0, dtype


def _tp_efficiency(gpu: GpuSpec, gpus: int) -> float:
    per = (
        TP_EFFICIENCY_PER_DOUBLING_NVLINK
        if (gpu.interconnect or "").lower().startswith(("nvlink", "infinity"))
        else TP_EFFICIENCY_PER_DOUBLING_PCIE
    )
    doublings = max(0, gpus.bit_length() - 1)
    return float(per**doublings)


def decode_weight_bytes(spec: ModelSpec, fmt: FormatSpec, concurrency: int) -> float:
    """Weight bytes one decode step reads for a batch of ``concurrency`` sequences."""
    layout = weight_layout(spec, fmt)
    experts = layout.role_bytes(EXPERTS)
    # Only one embedding row per token is read, unless it doubles as the output.
    dense = layout.weights_bytes - experts
    if not spec.tie_word_embeddings:
        dense -= layout.role_bytes(EMBEDDING)
    touched = 1.0
    if spec.num_experts:
        # Expected share of experts that at least one sequence of the batch routes to.
        miss = 1 - spec.num_experts_per_tok / spec.num_experts
        touched = 1 - miss ** max(1, concurrency)
    return dense + experts * touched


def estimate_speed(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    gpus: int,
    concurrency: int,
    prompt_tokens: int,
    output_tokens: int,
    cache_dtype: str = "f16",
) -> SpeedEstimate:
    """TTFT and decode tokens/s by roofline for this deployment and workload."""
    params = parameter_breakdown(spec)
    dtype = (
        "fp16"
        if engine == "llama.cpp" and fmt.compute_dtype != "fp32"
        else (fmt.compute_dtype)
    )
    notes: list[str] = []
    if gpu.kind == "gpu":
        peak_tflops, used_dtype = compute_tflops(gpu, dtype)
        mfu = PREFILL_MFU.get(engine, 0.4)
        bw_eff = DECODE_BANDWIDTH_EFFICIENCY.get(engine, 0.7)
        decode_mfu = DECODE_MFU
    else:
        peak_tflops, used_dtype = compute_tflops(
            gpu, "fp16" if gpu.kind == "apple" else "fp32"
        )
        mfu = CPU_PREFILL_MFU
        bw_eff = (
            CPU_BANDWIDTH_EFFICIENCY
            if gpu.kind == "cpu"
            else DECODE_BANDWIDTH_EFFICIENCY["llama.cpp"]
        )
        decode_mfu = CPU_DECODE_MFU if gpu.kind == "cpu" else DECODE_MFU
    if used_dtype != dtype:
        notes.append(
            f"{gpu.name} has no {dtype} tensor throughput listed; used {used_dtype}"
        )
    bw_eff *= KERNEL_BANDWIDTH_FACTOR.get(fmt.family, 1.0)
    if engine == "vllm" and gpus > 1:
        scale = gpus * _tp_efficiency(gpu, gpus)
    else:
        scale = 1.0  # llama.cpp splits layers: one GPU works at a time
    flops_per_s = max(peak_tflops * 1e12 * mfu * scale, 1.0)
    bandwidth = max(gpu.memory_bandwidth_bytes_per_s * bw_eff * scale, 1.0)

    attn_dim = spec.num_attention_heads * spec.head_dim
    prompt = max(0, prompt_tokens)
    prefill_flops = (
        2 * params.matmul_per_token * prompt
        + 2 * spec.num_layers * attn_dim * (prompt * prompt)
    )
    weight_read_s = decode_weight_bytes(spec, fmt, max(1, prompt)) / bandwidth
    ttft_s = max(prefill_flops / flops_per_s, weight_read_s)
    prefill_tps = prompt / ttft_s if ttft_s > 0 else 0.0

    batch = max(1, concurrency)
    avg_context = prompt + max(0, output_tokens) // 2
    kv_read = kv_cache_bytes(
        spec,
        context_tokens=avg_context,
        sequences=batch,
        cache_dtype=normalize_cache_dtype(cache_dtype),
    )
    step_bytes = decode_weight_bytes(spec, fmt, batch) + kv_read
    memory_s = step_bytes / bandwidth
    decode_flops = batch * (
        2 * params.matmul_per_token + 4 * spec.num_layers * attn_dim * avg_context
    )
    compute_s = decode_flops / (flops_per_s / mfu * decode_mfu)
    step_s = max(memory_s, compute_s)
    bound = "memory" if memory_s >= compute_s else "compute"
    per_seq = 1 / step_s
    return SpeedEstimate(
        ttft_s=ttft_s,
        prefill_tokens_per_s=prefill_tps,
        decode_tokens_per_s=per_seq,
        total_decode_tokens_per_s=per_seq * batch,
        decode_step_s=step_s,
        decode_bound=bound,
        compute_dtype=used_dtype,
        assumptions=tuple(notes),
    )
