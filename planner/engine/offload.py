"""llama.cpp partial offload: one GPU with some layers, or some experts, in host RAM.

Follows llama.cpp's own fitting (``common/fit.cpp``, ``llama-fit-params``):
leave a margin of 1 GiB free on the device; fill the device from the back of the
model with whole layers (``-ngl N``: the last N layers and the output on the GPU);
for a MoE model first keep every expert tensor in system memory and the dense
weights of all layers on the GPU, then bring the experts of the last layers back
while they fit (``--n-cpu-moe K`` keeps the experts of the first K layers in RAM,
the same tensors ``-ot "blk\\.(0|..|K-1)\\.ffn_.*_exps=CPU"`` names). The KV cache of a
layer lives where the layer runs.

Speed: a decode step reads the GPU's share at the GPU's bandwidth and the RAM
share (for experts, the ones the batch touches) at the host's; prefill batches
copy the RAM-resident weights to the GPU over PCIe once per micro-batch, as
llama.cpp does for large batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .catalog import GpuSpec
from .formats import FormatSpec
from .kv_cache import kv_bytes_per_token_per_layer, normalize_cache_dtype
from .runtime import (
    LLAMA_CPP_CTX_PAD_TOKENS,
    LLAMA_CPP_GPU_CONTEXT_BYTES,
    llama_cpp_compute_bytes,
)
from .spec import ModelSpec
from .tensors import EMBEDDING, EXPERTS, LM_HEAD
from .weights import weight_layout

if TYPE_CHECKING:
    from .request import PlanRequest

FIT_MARGIN_BYTES = 1 << 30  # llama.cpp --fit's default free-memory target per device
# Host RAM bandwidth llama.cpp reaches on the machine around the GPU: dual-channel
# DDR5-5600 (89.6 GB/s peak) at ~65%; a stated assumption, not a measurement.
HOST_BANDWIDTH_BYTES_PER_S = 58e9
PCIE_BYTES_PER_S = 25e9  # PCIe 4.0 x16 host-to-device, achieved


@dataclass(frozen=True, slots=True)
class OffloadPlan:
    """Where the weights and KV cache go, the flags that say so, and the bytes."""

    flags: str
    gpu_layers: int
    cpu_moe_layers: int
    gpu_bytes: int
    host_weight_bytes: int
    host_dense_bytes: float  # read every step from RAM
    host_expert_bytes: float  # all RAM-resident experts (a step reads those touched)
    kv_host_share: float


def offload_plan(
    spec: ModelSpec,
    fmt: FormatSpec,
    gpu: GpuSpec,
    *,
    context_tokens: int,
    sequences: int,
    cache_dtype: str = "f16",
) -> OffloadPlan | None:
    """The llama.cpp placement on one ``gpu``, or None when not even one layer fits."""
    layout = weight_layout(spec, fmt)
    n = max(1, spec.num_layers)
    embd = layout.role_bytes(EMBEDDING)
    output = layout.role_bytes(LM_HEAD) or (embd if spec.tie_word_embeddings else 0)
    experts = layout.role_bytes(EXPERTS)
    layers_total = layout.weights_bytes - embd - layout.role_bytes(LM_HEAD)
    per_layer = layers_total / n
    experts_per_layer = experts / max(1, spec.num_moe_layers or n)
    n_ctx = -(-context_tokens * sequences // LLAMA_CPP_CTX_PAD_TOKENS) * (
        LLAMA_CPP_CTX_PAD_TOKENS
    )
    kv_layer = n_ctx * kv_bytes_per_token_per_layer(
        spec, normalize_cache_dtype(cache_dtype)
    )
    budget = (
        gpu.memory_bytes
        - FIT_MARGIN_BYTES
        - LLAMA_CPP_GPU_CONTEXT_BYTES
        - llama_cpp_compute_bytes(spec)
        - output
    )
    if spec.is_moe:
        dense_all = (per_layer - experts_per_layer * (spec.num_moe_layers / n)) * n
        surplus = budget - dense_all - kv_layer * n
        if surplus >= 0:
            on_gpu = min(spec.num_moe_layers, int(surplus // experts_per_layer))
            cpu_moe = spec.num_moe_layers - on_gpu
            host_experts = cpu_moe * experts_per_layer
            return OffloadPlan(
                flags=f"-ngl 999 --n-cpu-moe {cpu_moe}",
                gpu_layers=n,
                cpu_moe_layers=cpu_moe,
                gpu_bytes=int(gpu.memory_bytes - FIT_MARGIN_BYTES - surplus)
                + int(on_gpu * experts_per_layer),
                host_weight_bytes=int(host_experts + embd),
                host_dense_bytes=0.0,
                host_expert_bytes=host_experts,
                kv_host_share=0.0,
            )
    layers = int(budget // (per_layer + kv_layer))
    if layers < 1:
        return None
    layers = min(layers, n)
    cpu_layers = n - layers
    host = cpu_layers * per_layer
    host_experts = host * (experts / layers_total) if layers_total else 0.0
    return OffloadPlan(
        flags=f"-ngl {layers}",
        gpu_layers=layers,
        cpu_moe_layers=0,
        gpu_bytes=int(
            layers * (per_layer + kv_layer)
            + output
            + LLAMA_CPP_GPU_CONTEXT_BYTES
            + llama_cpp_compute_bytes(spec)
        ),
        host_weight_bytes=int(host + embd),
        host_dense_bytes=host - host_experts,
        host_expert_bytes=host_experts,
        kv_host_share=cpu_layers / n,
    )


def one_gpu_offload(
    req: PlanRequest,
    loaded: FormatSpec,
    cache: str,
    engine: str,
    *,
    fits: bool,
    gpus: int,
) -> dict[str, Any] | None:
    """The llama.cpp 1-GPU partial-offload placement when the format needs more."""
    if engine != "llama.cpp" or req.gpu.kind != "gpu" or (fits and gpus == 1):
        return None
    placed = offload_plan(
        req.model,
        loaded,
        req.gpu,
        context_tokens=req.context_tokens,
        sequences=req.concurrency,
        cache_dtype=cache,
    )
    if placed is None:
        return None
    return {
        "flags": placed.flags,
        "gpu_layers": placed.gpu_layers,
        "cpu_moe_layers": placed.cpu_moe_layers,
        "gpu_bytes": placed.gpu_bytes,
        "host_weight_bytes": placed.host_weight_bytes,
    }
