"""Latency under load: one engine step of a continuously batched server, and what a
request sees when ``n`` requests are in flight.

A step of vLLM (chunked prefill) or llama.cpp's server runs the decode tokens of
every running sequence plus a chunk of waiting prompts, up to a token budget
(vLLM ``max_num_batched_tokens``, llama.cpp ``n_batch``). One step takes

    max(bytes read / bandwidth, FLOPs / usable FLOP/s)
    + per-layer floor (kernel launches, norms, small ops)
    + tensor-parallel all-reduce (2 per layer, over the device's interconnect)
    + a fixed per-step overhead (scheduler, sampling)

where bytes read = dense weights + the experts the step's tokens route to
(expected share ``1 - (1 - k/E)^tokens``) + every token's attention read of its
KV cache (grows with context). Attention FLOPs grow with context too. The step's
tokens run through one GEMM, so a step with a prompt in it runs its decode tokens
at the prompt's efficiency.

A request sees (steady state, Poisson arrivals, ``n`` requests in flight):

* time per output token = the step time with ``n`` decoding sequences plus the
  prompt tokens that arrive per step on average (``n * P / O``), as vLLM's
  benchmark defines TPOT (a request's mean);
* time to first token = waiting for the step in flight, then its prompt in
  chunks of the budget left after the decoders, beside the other prompts that
  arrived during the same step (``(n - 1) * P / O`` tokens on average: measured
  with llama-server at 8 slots, a prompt shared its step with 0.17 others, the
  estimate for its lengths 0.21).

Percentiles: the number of requests in flight is Poisson around its mean (an
M/G/inf queue), so p95 figures are evaluated at ``n + 1.645 * sqrt(n)`` in flight.
All figures are model estimates, not measurements of this deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import GpuSpec
from .formats import FormatSpec
from .kv_cache import kv_bytes_per_token_per_layer, kv_layer_counts
from .offload import HOST_BANDWIDTH_BYTES_PER_S, PCIE_BYTES_PER_S, OffloadPlan
from .runtime import LLAMA_CPP_UBATCH_TOKENS
from .spec import ModelSpec
from .speed import (
    CPU_BANDWIDTH_EFFICIENCY,
    CPU_DECODE_MFU,
    CPU_PREFILL_MFU,
    DECODE_BANDWIDTH_EFFICIENCY,
    DECODE_MFU,
    KERNEL_BANDWIDTH_FACTOR,
    PREFILL_MFU,
    compute_tflops,
)
from .tensors import EMBEDDING, EXPERTS, parameter_breakdown
from .weights import weight_layout

Z95 = 1.645  # one-sided 95th percentile of a normal distribution

# Token budget of one step: vLLM's max_num_batched_tokens with chunked prefill on
# (V1 default for `vllm serve`), llama.cpp server's n_batch (default 2048).
STEP_TOKEN_BUDGET = {"vllm": 8192, "llama.cpp": 2048}
# Default cap on sequences per step: vLLM max_num_seqs; llama.cpp's -np slots are
# chosen by the operator, so the search offers up to the same number.
MAX_SEQUENCES = 256

# Per-layer floor of one step in seconds: ~8-12 kernels per layer (norms, rope,
# attention, GEMMs, activation) at a few microseconds each when the GEMMs are tiny.
# vLLM replays CUDA graphs for decode; llama.cpp's CUDA backend uses graphs too
# but launches more, smaller kernels. Round numbers, stated as assumptions.
LAYER_FLOOR_S = {"vllm": 15e-6, "llama.cpp": 25e-6}
CPU_LAYER_FLOOR_S = 40e-6  # llama.cpp on CPU: thread barriers per op
# Per-step overhead outside the GPU kernels: scheduling, sampling, detokenising.
STEP_OVERHEAD_S = {"vllm": 1e-3, "llama.cpp": 1e-3}
CPU_STEP_OVERHEAD_S = 0.5e-3

# All-reduce: NCCL ring moves 2(n-1)/n of the message over the slower direction of
# the link; small messages pay a latency per all-reduce. Bus efficiency from NCCL
# tests is ~80% of the unidirectional link rate.
ALLREDUCE_BUS_EFFICIENCY = 0.8
ALLREDUCE_LATENCY_S = {"nvlink": 8e-6, "infinity": 10e-6, "pcie": 25e-6, "net": 30e-6}
# PCIe 4.0 x16, bidirectional, when a device lists no interconnect bandwidth.
DEFAULT_INTERCONNECT_BYTES_PER_S = 64e9
ACTIVATION_BYTES = 2
OFFLOAD_COPY_MIN_TOKENS = 32  # llama.cpp's batch size for copying weights to the GPU


def interconnect_family(gpu: GpuSpec) -> str:
    """'nvlink', 'infinity', 'pcie' or 'net' from the device's interconnect text."""
    text = (gpu.interconnect or "").lower()
    if text.startswith("nvlink"):
        return "nvlink"
    if text.startswith("infinity"):
        return "infinity"
    if "gbe" in text or "roce" in text:
        return "net"
    return "pcie"


@dataclass(frozen=True, slots=True)
class StepModel:
    """Per-step constants of one deployment (model, format, device, engine, GPUs)."""

    engine: str
    gpus: int
    tensor_parallel: int
    layers: int
    dense_bytes: float  # per GPU, read once per step
    expert_bytes: float  # per GPU, all experts
    experts: int
    experts_per_token: int
    kv_bytes_per_token_full: float  # per GPU, full-attention layers
    kv_bytes_per_token_sliding: float  # per GPU, sliding-window layers
    sliding_window: int
    matmul_flops_per_token: float  # per GPU
    attention_flops_per_token_per_ctx: float  # per GPU
    bandwidth_bytes_per_s: float  # usable, per GPU
    prefill_flops_per_s: float  # usable, per GPU
    decode_flops_per_s: float  # usable, per GPU
    floor_s: float
    allreduce_latency_s: float
    allreduce_bytes_per_s: float
    hidden_size: int
    token_budget: int
    compute_dtype: str
    notes: tuple[str, ...] = ()
    # Partial offload (llama.cpp): weights and KV share kept in host RAM.
    host_dense_bytes: float = 0.0
    host_expert_bytes: float = 0.0
    host_kv_share: float = 0.0

    def allreduce_s(self, tokens: float) -> float:
        """Time of one step's all-reduces (2 per layer) for ``tokens`` tokens."""
        n = self.tensor_parallel
        if n <= 1:
            return 0.0
        message = tokens * self.hidden_size * ACTIVATION_BYTES
        one = self.allreduce_latency_s + 2 * (n - 1) / n * message / (
            self.allreduce_bytes_per_s
        )
        return 2 * self.layers * one

    def _host_s(self, tokens: float, gpu_non_dense_read: float) -> float:
        """Extra seconds for the RAM-resident share of a partially offloaded model."""
        touched = 1.0
        if self.experts:
            miss = 1.0 - self.experts_per_token / self.experts
            touched = 1.0 - miss ** (tokens if tokens > 1 else 1.0)
        kv = gpu_non_dense_read - self.expert_bytes * (touched if self.experts else 0)
        read = (
            self.host_dense_bytes
            + self.host_expert_bytes * touched
            + self.host_kv_share * max(0.0, kv)
        )
        if tokens >= OFFLOAD_COPY_MIN_TOKENS:
            # Large batches: llama.cpp copies the weights to the GPU instead.
            copy = (
                math.ceil(tokens / LLAMA_CPP_UBATCH_TOKENS)
                * (self.host_dense_bytes + self.host_expert_bytes)
                / PCIE_BYTES_PER_S
            )
            return min(read / HOST_BANDWIDTH_BYTES_PER_S * math.ceil(tokens / 32), copy)
        return read / HOST_BANDWIDTH_BYTES_PER_S

    def step_s(
        self,
        *,
        decode_tokens: float,
        decode_context: float,
        prefill_tokens: float,
        prefill_context: float,
    ) -> float:
        """Time of one step with these decode and prefill tokens (mean contexts)."""
        return self.step(decode_tokens, decode_context, prefill_tokens, prefill_context)

    def step(
        self, decode: float, decode_ctx: float, prefill: float, prefill_ctx: float
    ) -> float:
        """``step_s`` with positional arguments (the search calls it ~10^5 times)."""
        tokens = decode + prefill
        read = self.dense_bytes
        if self.experts:
            miss = 1.0 - self.experts_per_token / self.experts
            read += self.expert_bytes * (1.0 - miss ** (tokens if tokens > 1 else 1.0))
        full, sliding, window = (
            self.kv_bytes_per_token_full,
            self.kv_bytes_per_token_sliding,
            self.sliding_window,
        )
        if window:
            read += decode * (
                full * decode_ctx
                + sliding * (window if window < decode_ctx else decode_ctx)
            )
            if prefill:
                read += full * prefill_ctx + sliding * (
                    window if window < prefill_ctx else prefill_ctx
                )
        else:
            read += decode * (full + sliding) * decode_ctx
            if prefill:
                read += (full + sliding) * prefill_ctx
        memory_s = read / self.bandwidth_bytes_per_s
        if self.host_dense_bytes or self.host_expert_bytes:
            memory_s += self._host_s(tokens, read - self.dense_bytes)
        per_token, per_ctx = (
            self.matmul_flops_per_token,
            self.attention_flops_per_token_per_ctx,
        )
        # One GEMM runs every token of the step: with a prompt in it, the decode
        # tokens ride the prompt's tiled kernels at the prefill efficiency.
        compute_s = (
            decode * (per_token + per_ctx * decode_ctx)
            + prefill * (per_token + per_ctx * prefill_ctx)
        ) / (self.prefill_flops_per_s if prefill else self.decode_flops_per_s)
        step = (memory_s if memory_s > compute_s else compute_s) + self.floor_s
        if self.tensor_parallel > 1:
            step += self.allreduce_s(tokens)
        return step


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """What a request sees with ``concurrency`` requests in flight (mean and p95)."""

    concurrency: int
    ttft_s: float
    ttft_p95_s: float
    tpot_s: float
    tpot_p95_s: float
    tokens_per_s_per_user: float  # 1 / p95 time per output token
    output_tokens_per_s: float  # whole replica, mean
    requests_per_s: float  # what one replica completes at this concurrency

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def step_model(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    engine: str,
    gpus: int,
    cache_dtype: str = "f16",
    offload: OffloadPlan | None = None,
) -> StepModel:
    """The per-step constants of serving ``spec`` in ``fmt`` on ``gpus`` x ``gpu``."""
    layout = weight_layout(spec, fmt)
    params = parameter_breakdown(spec)
    experts = layout.role_bytes(EXPERTS)
    dense = layout.weights_bytes - experts
    if not spec.tie_word_embeddings:
        dense -= layout.role_bytes(EMBEDDING)  # one row per token is read
    notes: list[str] = []
    tp = gpus if engine == "vllm" else 1
    # llama.cpp splits layers: each GPU holds 1/n of the weights, but they run one
    # after the other, so a step reads the whole model at one GPU's bandwidth.
    dtype = (
        "fp16"
        if engine == "llama.cpp" and fmt.compute_dtype != "fp32"
        else fmt.compute_dtype
    )
    if gpu.kind == "gpu":
        peak_tflops, used = compute_tflops(gpu, dtype)
        mfu = PREFILL_MFU.get(engine, 0.4)
        decode_mfu = DECODE_MFU
        bw_eff = DECODE_BANDWIDTH_EFFICIENCY.get(engine, 0.7)
        layer_floor = LAYER_FLOOR_S.get(engine, 20e-6)
        overhead = STEP_OVERHEAD_S.get(engine, 1e-3)
    else:
        peak_tflops, used = compute_tflops(
            gpu, "fp16" if gpu.kind == "apple" else "fp32"
        )
        mfu = CPU_PREFILL_MFU
        decode_mfu = CPU_DECODE_MFU if gpu.kind == "cpu" else DECODE_MFU
        bw_eff = (
            CPU_BANDWIDTH_EFFICIENCY
            if gpu.kind == "cpu"
            else DECODE_BANDWIDTH_EFFICIENCY["llama.cpp"]
        )
        layer_floor = CPU_LAYER_FLOOR_S if gpu.kind == "cpu" else LAYER_FLOOR_S[engine]
        overhead = CPU_STEP_OVERHEAD_S if gpu.kind == "cpu" else STEP_OVERHEAD_S[engine]
    if used != dtype:
        notes.append(f"{gpu.name} lists no {dtype} throughput; {used} used")
    bw_eff *= KERNEL_BANDWIDTH_FACTOR.get(fmt.family, 1.0)
    per_layer_kv = kv_bytes_per_token_per_layer(spec, cache_dtype)
    full, sliding = kv_layer_counts(spec)
    if engine == "vllm":
        kv = spec.num_kv_heads
        kv_share = (
            1.0 if spec.is_mla else (math.ceil(kv / tp) / kv if tp <= kv else 1 / kv)
        )
    else:
        kv_share = 1.0  # layers run in turn: one step reads the whole cache
    attn_dim = spec.num_attention_heads * spec.head_dim
    link = interconnect_family(gpu)
    link_bytes = gpu.interconnect_bytes_per_s or DEFAULT_INTERCONNECT_BYTES_PER_S
    peak = max(peak_tflops * 1e12, 1.0)
    return StepModel(
        engine=engine,
        gpus=gpus,
        tensor_parallel=tp,
        layers=spec.num_layers,
        dense_bytes=dense / tp - (offload.host_dense_bytes if offload else 0.0),
        expert_bytes=experts / tp - (offload.host_expert_bytes if offload else 0.0),
        experts=spec.num_experts if spec.is_moe else 0,
        experts_per_token=spec.num_experts_per_tok,
        kv_bytes_per_token_full=full * per_layer_kv * kv_share,
        kv_bytes_per_token_sliding=sliding * per_layer_kv * kv_share,
        sliding_window=spec.sliding_window or 0,
        matmul_flops_per_token=2 * params.matmul_per_token / tp,
        attention_flops_per_token_per_ctx=4 * spec.num_layers * attn_dim / tp,
        bandwidth_bytes_per_s=max(gpu.memory_bandwidth_bytes_per_s * bw_eff, 1.0),
        prefill_flops_per_s=peak * mfu,
        decode_flops_per_s=peak * decode_mfu,
        floor_s=spec.num_layers * layer_floor + overhead,
        allreduce_latency_s=ALLREDUCE_LATENCY_S[link],
        allreduce_bytes_per_s=link_bytes / 2 * ALLREDUCE_BUS_EFFICIENCY,
        hidden_size=spec.hidden_size,
        token_budget=STEP_TOKEN_BUDGET.get(engine, 2048),
        compute_dtype=used,
        notes=tuple(notes),
        host_dense_bytes=offload.host_dense_bytes if offload else 0.0,
        host_expert_bytes=offload.host_expert_bytes if offload else 0.0,
        host_kv_share=offload.kv_host_share if offload else 0.0,
    )


def _prefill_s(
    m: StepModel, decoders: float, prompt_tokens: float, decode_ctx: float = 0.0
) -> float:
    """Time to run ``prompt_tokens`` of prompts in budget-sized chunks next to
    ``decoders`` sequences (``decode_ctx`` tokens of context each)."""
    if prompt_tokens <= 0:
        return 0.0
    room = max(1.0, m.token_budget - decoders)
    chunks = math.ceil(prompt_tokens / room)
    per_chunk = prompt_tokens / chunks
    total = 0.0
    for i in range(chunks):
        # Attention of chunk i reads the chunks before it (causal mean).
        total += m.step(decoders, decode_ctx, per_chunk, per_chunk * (i + 0.5))
    return total


def p95_in_flight(concurrency: float) -> float:
    """Requests in flight at the 95th percentile when their mean is ``concurrency``."""
    n = max(1.0, concurrency)
    return n + Z95 * math.sqrt(n) if n > 1 else 1.0


def time_per_output_token(m: StepModel, in_flight: float, p: int, o: int) -> float:
    """Mean seconds per output token of a request with ``in_flight`` requests
    (``p`` prompt and ``o`` output tokens each) sharing every step."""
    # Each sequence is replaced once per o steps, so the prompts of the *other*
    # in_flight - 1 sequences add (in_flight - 1) * p / o tokens to the average
    # step between a request's first and last token (its own prompt ran before
    # its first token: it is in TTFT, not in time per output token).
    return m.step(in_flight, p + o / 2, max(0.0, in_flight - 1) * p / o, p / 2)


def time_to_first_token(
    m: StepModel, in_flight: float, p: int, o: int, wait_share: float
) -> float:
    """Seconds to a request's first token: ``wait_share`` of the step in flight
    (1/2 for Poisson arrivals, 1 for a closed-loop client), then its prompt."""
    others = max(0.0, in_flight - 1)
    wait = (
        time_per_output_token(m, others, p, o) if others else 0.0
    )  # the step already running
    # The other prompts sent during the step it waited for run beside its own.
    alongside = others * p / o
    return wait * wait_share + _prefill_s(m, others, p + alongside, p + o / 2)


def p95_latency(
    m: StepModel, concurrency: int, prompt_tokens: int, output_tokens: int
) -> tuple[float, float]:
    """(TTFT p95, time per output token p95) with ``concurrency`` in flight on average."""
    p, o = max(0, prompt_tokens), max(1, output_tokens)
    high = p95_in_flight(concurrency)
    # At p95 a request waits for a whole step already running.
    return time_to_first_token(m, high, p, o, 1.0), time_per_output_token(m, high, p, o)


def load_point(
    m: StepModel, *, concurrency: int, prompt_tokens: int, output_tokens: int
) -> LoadPoint:
    """Latency and throughput with ``concurrency`` requests in flight."""
    n = max(1, concurrency)
    p, o = max(0, prompt_tokens), max(1, output_tokens)
    tpot_mean = time_per_output_token(m, n, p, o)
    ttft_mean = time_to_first_token(m, n, p, o, 0.5)
    ttft_p95, tpot_p95 = p95_latency(m, n, p, o)
    latency = ttft_mean + (o - 1) * tpot_mean
    return LoadPoint(
        concurrency=n,
        ttft_s=ttft_mean,
        ttft_p95_s=ttft_p95,
        tpot_s=tpot_mean,
        tpot_p95_s=tpot_p95,
        tokens_per_s_per_user=1 / tpot_p95,
        output_tokens_per_s=n / tpot_mean,
        requests_per_s=n / latency,
    )


def load_curve(
    m: StepModel,
    *,
    prompt_tokens: int,
    output_tokens: int,
    concurrencies: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
) -> list[LoadPoint]:
    """Latency and throughput at each concurrency (for curves on the plan page)."""
    return [
        load_point(
            m, concurrency=c, prompt_tokens=prompt_tokens, output_tokens=output_tokens
        )
        for c in concurrencies
    ]
