"""Memory a serving engine needs per GPU, and what fits.

vLLM: weights (tensor parallel over N GPUs) + KV cache in blocks of 16 tokens +
the activation peak of its profiling run (``max_num_batched_tokens`` tokens and a
sampler pass over ``max_num_seqs`` rows) + CUDA context, NCCL and CUDA graphs, all
within ``gpu_memory_utilization`` of each GPU.

llama.cpp: weights (layers split over N GPUs; the input embedding stays in host
RAM) + KV cache for ``n_ctx = context * sequences`` + compute buffers sized by the
micro-batch (512 tokens) and the vocabulary, with flash attention on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial

from .catalog import GpuSpec
from .formats import FormatSpec
from .gguf_rules import gguf_cpu_repack_bytes
from .kv_cache import (
    kv_bytes_per_token_per_layer,
    kv_layer_counts,
    normalize_cache_dtype,
)
from .spec import ModelSpec
from .tensors import EMBEDDING
from .weights import replicated_weight_bytes, weight_layout

ENGINES = ("vllm", "llama.cpp")
TENSOR_PARALLEL_SIZES = (
    1,
    2,
    4,
    8,
)  # one node; more nodes (pipeline parallel) not modelled

MIB = 1 << 20
GIB = 1 << 30

# vLLM defaults and overheads (vLLM 0.8-0.11 on CUDA).
VLLM_BLOCK_TOKENS = 16
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
VLLM_MAX_NUM_BATCHED_TOKENS = 8192  # chunked-prefill token budget of the profiling run
VLLM_MAX_NUM_SEQS = 256
VLLM_CUDA_CONTEXT_BYTES = 512 * MIB  # CUDA context, cuBLAS workspace, allocator slack
VLLM_CUDA_GRAPHS_BYTES = 512 * MIB  # captured decode graphs (logs show 0.3-1 GiB)
VLLM_NCCL_BYTES = 256 * MIB  # extra per GPU when tensor parallel > 1
ACTIVATION_BYTES = 2  # fp16/bf16 activations

# llama.cpp defaults and overheads.
LLAMA_CPP_UBATCH_TOKENS = 512
LLAMA_CPP_CTX_PAD_TOKENS = 256
LLAMA_CPP_GPU_CONTEXT_BYTES = 300 * MIB  # CUDA/Metal context and pools
LLAMA_CPP_HOST_OVERHEAD_BYTES = (
    256 * MIB
)  # process, mmap bookkeeping, host compute buffer
# llama.cpp serving from a CPU, fitted to the process a job measures an artifact in
# (quantjobs/backends/gguf/serving.py: a fresh process that loads the file, makes an
# n_ctx context and decodes a warm-up prompt; bench/job_measurements.py): peak RSS
# minus the engine's weights, repack copy, KV cache and resident compute share
# left 67.5-69.3 MiB over 7 GGUF types (Q8_0 ... Q2_K) at n_ctx 512, median
# 68.7 MiB, and 69.1 MiB for Q8_0 at n_ctx 2048 (2026-12-02). That is the bare
# process (Python + numpy + llama-cpp-python imported, backend initialised: VmHWM
# 50.3 MiB) plus what loading leaves resident (vocabulary, graph reservation:
# ~18.5 MiB). No CUDA context. (72 MiB before: fitted to bench/_llama_probe.py,
# whose process also imports psutil and the evaluator.)
LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES = 69 * MIB
# On a CPU the compute buffer is reserved as virtual memory and only the pages a
# forward pass touches become resident: the all-token logits it is sized for are
# never written when only the last token's logits are needed. Measured share: 0.19.
LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION = 0.19

# Share of a device's memory a process may use when it is not a discrete GPU.
APPLE_GPU_MEMORY_FRACTION = 0.75  # Metal's recommended working set on unified memory
CPU_MEMORY_FRACTION = 0.9  # leave room for the operating system


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Memory per GPU for one engine, format and workload, and whether it fits."""

    engine: str
    gpus: int
    weights_bytes_per_gpu: int
    kv_cache_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    overhead_bytes_per_gpu: int
    total_bytes_per_gpu: int
    budget_bytes_per_gpu: int
    host_bytes: int
    fits: bool
    reasons: tuple[str, ...] = ()

    @property
    def fixed_bytes_per_gpu(self) -> int:
        """Everything but the KV cache."""
        return self.total_bytes_per_gpu - self.kv_cache_bytes_per_gpu


def budget_bytes_per_gpu(
    gpu: GpuSpec, engine: str, gpu_memory_utilization: float
) -> int:
    """Bytes of one device the engine may use."""
    if gpu.kind == "apple":
        return int(gpu.memory_bytes * APPLE_GPU_MEMORY_FRACTION)
    if gpu.kind == "cpu":
        return int(gpu.memory_bytes * CPU_MEMORY_FRACTION)
    if engine == "vllm":
        return int(gpu.memory_bytes * gpu_memory_utilization)
    return gpu.memory_bytes


def valid_tensor_parallel(spec: ModelSpec, tensor_parallel: int) -> bool:
    """Whether vLLM can split ``spec`` over this many GPUs (heads must divide)."""
    n, kv = tensor_parallel, spec.num_kv_heads
    return spec.num_attention_heads % n == 0 and (kv % n == 0 or n % kv == 0)


def _ffn_width(spec: ModelSpec) -> int:
    if spec.is_moe:
        routed = spec.num_experts_per_tok * spec.moe_intermediate_size
        return max(
            spec.intermediate_size, routed + spec.shared_expert_intermediate_size
        )
    return spec.intermediate_size


def vllm_activation_bytes(spec: ModelSpec, tensor_parallel: int) -> int:
    """Peak activation memory of vLLM's profiling run, per GPU."""
    tokens = VLLM_MAX_NUM_BATCHED_TOKENS
    n = tensor_parallel
    q_kv = (
        spec.num_attention_heads * spec.head_dim + 2 * spec.num_kv_heads * spec.head_dim
    )
    # residual + normed hidden, q/k/v, gate+up output and the activated product
    per_token = 4 * spec.hidden_size + q_kv // n + 3 * _ffn_width(spec) // n
    forward = tokens * per_token * ACTIVATION_BYTES
    sampler = (
        VLLM_MAX_NUM_SEQS * spec.vocab_size * 4 * 2
    )  # fp32 logits and probabilities
    return forward + sampler


def llama_cpp_compute_bytes(spec: ModelSpec) -> int:
    """llama.cpp's compute buffer on the main device (flash attention on)."""
    ub = LLAMA_CPP_UBATCH_TOKENS
    # The output logits of a micro-batch dominate for large vocabularies; the
    # FFN intermediate for wide models. The graph allocator reuses the rest.
    return (
        ub * 4 * max(spec.vocab_size, 2 * _ffn_width(spec))
        + ub * 4 * 4 * spec.hidden_size
    )


def _kv_share(spec: ModelSpec, engine: str, gpus: int) -> float:
    """Fraction of the whole KV cache that one GPU holds."""
    if engine == "llama.cpp":
        return 1 / gpus  # layer split
    if spec.is_mla:
        return 1.0  # vLLM keeps the whole latent cache on every GPU
    kv = spec.num_kv_heads
    return math.ceil(kv / gpus) / kv if gpus <= kv else 1 / kv


def kv_cache_bytes_per_gpu(
    spec: ModelSpec,
    *,
    engine: str,
    gpus: int,
    context_tokens: int,
    sequences: int,
    cache_dtype: str,
) -> int:
    """KV cache bytes one GPU holds, with the engine's block or padding rounding."""
    per_layer = kv_bytes_per_token_per_layer(spec, normalize_cache_dtype(cache_dtype))
    full, sliding = kv_layer_counts(spec)
    if engine == "vllm":
        # Each sequence owns whole blocks of 16 tokens.
        ctx = -(-context_tokens // VLLM_BLOCK_TOKENS) * VLLM_BLOCK_TOKENS
        window = min(ctx, spec.sliding_window or ctx)
        tokens = (full * ctx + sliding * window) * sequences
    else:
        # One unified cache of n_ctx = context * sequences, padded to 256 tokens.
        total = context_tokens * sequences
        n_ctx = -(-total // LLAMA_CPP_CTX_PAD_TOKENS) * LLAMA_CPP_CTX_PAD_TOKENS
        window = min(n_ctx, (spec.sliding_window or n_ctx) * sequences)
        tokens = full * n_ctx + sliding * window
    return math.ceil(tokens * per_layer * _kv_share(spec, engine, gpus))


def _fixed_bytes(
    spec: ModelSpec, fmt: FormatSpec, gpu: GpuSpec, engine: str, gpus: int
) -> tuple[int, int, int, int]:
    """(weights, activation, overhead, host) bytes per GPU, independent of the context."""
    avx512 = "avx512" in gpu.cpu_features
    return _fixed_bytes_cached(spec, fmt, gpu.kind, engine, gpus, avx512)


@lru_cache(maxsize=8192)
def _fixed_bytes_cached(
    spec: ModelSpec,
    fmt: FormatSpec,
    kind: str,
    engine: str,
    gpus: int,
    avx512: bool = False,
) -> tuple[int, int, int, int]:
    layout = weight_layout(spec, fmt)
    if engine == "vllm":
        weights = math.ceil(
            (layout.weights_bytes + replicated_weight_bytes(spec, fmt, gpus)) / gpus
        )
        activation = vllm_activation_bytes(spec, gpus)
        overhead = VLLM_CUDA_CONTEXT_BYTES + VLLM_CUDA_GRAPHS_BYTES
        if gpus > 1:
            overhead += VLLM_NCCL_BYTES
        host = 0
        return weights, activation, overhead, host
    embd = layout.role_bytes(EMBEDDING)
    if kind == "cpu":
        # The weights stay mapped from the file; the matrices the CPU backend
        # re-lays out for its kernels are held a second time, as runtime overhead.
        repack = (
            gguf_cpu_repack_bytes(spec, fmt.gguf_type, avx512=avx512)
            if fmt.family == "gguf" and fmt.gguf_type is not None
            else 0
        )
        return (
            layout.weights_bytes,
            math.ceil(
                llama_cpp_compute_bytes(spec) * LLAMA_CPP_CPU_COMPUTE_RESIDENT_FRACTION
            ),
            LLAMA_CPP_CPU_HOST_OVERHEAD_BYTES + repack,
            0,
        )
    # The input embedding lives in host RAM; a tied model also copies it to the
    # GPU as the output matrix.
    on_gpu = layout.weights_bytes - (0 if spec.tie_word_embeddings else embd)
    weights = math.ceil(on_gpu / gpus)
    return (
        weights,
        llama_cpp_compute_bytes(spec),
        LLAMA_CPP_GPU_CONTEXT_BYTES,
        embd + LLAMA_CPP_HOST_OVERHEAD_BYTES,
    )


def estimate_memory(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    gpus: int,
    context_tokens: int,
    sequences: int,
    cache_dtype: str = "f16",
    gpu_memory_utilization: float = VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
) -> MemoryEstimate:
    """Memory per GPU for serving ``sequences`` sequences of ``context_tokens``."""
    weights, activation, overhead, host = _fixed_bytes(spec, fmt, gpu, engine, gpus)
    kv = kv_cache_bytes_per_gpu(
        spec,
        engine=engine,
        gpus=gpus,
        context_tokens=context_tokens,
        sequences=sequences,
        cache_dtype=cache_dtype,
    )
    total = weights + kv + activation + overhead
    budget = budget_bytes_per_gpu(gpu, engine, gpu_memory_utilization)
    reasons: list[str] = []
    if total > budget:
        reasons.append(
            f"needs {total / 1e9:.1f} GB per device but {budget / 1e9:.1f} GB is usable "
            f"on {gpus}x {gpu.name}"
        )
    if engine == "vllm" and not valid_tensor_parallel(spec, gpus):
        reasons.append(
            f"vLLM cannot split {spec.num_attention_heads} attention heads / "
            f"{spec.num_kv_heads} kv heads over {gpus} GPUs"
        )
    return MemoryEstimate(
        engine,
        gpus,
        weights,
        kv,
        activation,
        overhead,
        total,
        budget,
        host,
        not reasons,
        tuple(reasons),
    )


def fewest_gpus(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    context_tokens: int,
    sequences: int,
    cache_dtype: str = "f16",
    gpu_memory_utilization: float = VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
) -> int | None:
    """Fewest GPUs (1, 2, 4 or 8 on one node) that fit the workload; None if 8 do not."""
    sizes = (1,) if gpu.kind != "gpu" else TENSOR_PARALLEL_SIZES
    for n in sizes:
        est = estimate_memory(
            spec,
            fmt,
            gpu,
            engine=engine,
            gpus=n,
            context_tokens=context_tokens,
            sequences=sequences,
            cache_dtype=cache_dtype,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        if est.fits:
            return n
    return None


def _kv_slope_bytes(
    spec: ModelSpec, engine: str, gpus: int, cache_dtype: str
) -> tuple[float, float]:
    """Per-GPU KV bytes per token per sequence: (full-attention layers, sliding layers)."""
    per_layer = kv_bytes_per_token_per_layer(spec, normalize_cache_dtype(cache_dtype))
    share = _kv_share(spec, engine, gpus)
    full, sliding = kv_layer_counts(spec)
    return full * per_layer * share, sliding * per_layer * share


def max_context_tokens(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    gpus: int,
    sequences: int,
    cache_dtype: str = "f16",
    gpu_memory_utilization: float = VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
) -> int:
    """Longest context per sequence that fits (capped at the model's own maximum)."""
    estimate = partial(
        estimate_memory,
        spec,
        fmt,
        gpu,
        engine=engine,
        gpus=gpus,
        sequences=sequences,
        cache_dtype=cache_dtype,
        gpu_memory_utilization=gpu_memory_utilization,
    )
    est = estimate(context_tokens=0)
    free = est.budget_bytes_per_gpu - est.fixed_bytes_per_gpu
    cap = spec.max_position_embeddings
    if free <= 0 or sequences <= 0:
        return 0
    a, b = _kv_slope_bytes(spec, engine, gpus, cache_dtype)
    per_seq = free / sequences
    window = spec.sliding_window or 0
    if (a + b) * window >= per_seq or not b:
        ctx = per_seq / (a + b) if a + b else float(cap)
    else:
        ctx = (per_seq - b * window) / a if a else float(cap)
    step = VLLM_BLOCK_TOKENS if engine == "vllm" else LLAMA_CPP_CTX_PAD_TOKENS
    ctx_tokens = min(cap, int(ctx) // step * step)
    # Rounding (blocks, n_ctx padding) can push the exact need over; step back.
    while ctx_tokens > 0 and not estimate(context_tokens=ctx_tokens).fits:
        ctx_tokens -= step
    return max(0, ctx_tokens)


def max_concurrency(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    gpus: int,
    context_tokens: int,
    cache_dtype: str = "f16",
    gpu_memory_utilization: float = VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
) -> int:
    """Most sequences of ``context_tokens`` whose KV cache fits next to the weights."""
    estimate = partial(
        estimate_memory,
        spec,
        fmt,
        gpu,
        engine=engine,
        gpus=gpus,
        context_tokens=context_tokens,
        cache_dtype=cache_dtype,
        gpu_memory_utilization=gpu_memory_utilization,
    )
    one = estimate(sequences=1)
    free = one.budget_bytes_per_gpu - one.fixed_bytes_per_gpu
    if free <= 0 or one.kv_cache_bytes_per_gpu <= 0:
        return 0
    n = int(free // one.kv_cache_bytes_per_gpu)
    while n > 0 and not estimate(sequences=n).fits:
        n -= max(1, n // 100)
    return n
