"""Fine-tuning memory and time: full, LoRA and QLoRA on one or more GPUs.

Memory per GPU (data parallel: every GPU holds the model; ZeRO is not modelled):

* weights: full fine-tuning in mixed precision keeps an fp32 master copy and a
  16-bit copy (6 bytes per parameter); LoRA keeps the frozen base in 16-bit (2);
  QLoRA in NF4 with double-quantised absmax (~4.13 bits per linear weight; the
  embeddings, norms and lm_head stay 16-bit);
* trainable parameters (all of them, or the adapters) carry fp32 gradients (4
  bytes) and AdamW states (8 bytes; 2 with 8-bit AdamW), as in Hugging Face's
  "model training anatomy";
* activations saved for backward, per token and layer, counted from what a
  Llama-style block's autograd keeps (``activation_bytes_per_token_layer``);
  with gradient checkpointing only each layer's input is kept, plus one layer's
  activations while it is recomputed;
* the loss: logits in the compute dtype, their fp32 copy, log-softmax and its
  gradient, for every token of the micro-batch.

Time: 6 x (trainable-path) FLOPs per token (2 forward, 4 backward; LoRA skips the
weight gradients of the frozen base, so 4 instead of 6 for the base matmuls; with
checkpointing one more forward) over the GPUs' peak at a stated utilisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import GpuSpec
from .spec import ModelSpec
from .speed import compute_tflops
from .tensors import parameter_breakdown, tensor_inventory

METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw-8bit")
# Hugging Face PEFT module names -> the GGUF tensor names of tensors.py.
LORA_TARGETS = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
ALL_LINEAR = tuple(LORA_TARGETS)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
NF4_BITS_PER_WEIGHT = (
    4 + 8 / 64 + 32 / (64 * 256)
)  # NF4, 8-bit absmax per 64, fp32 per 256
MIXED_PRECISION_WEIGHT_BYTES = 6  # fp32 master + 16-bit copy
FP32 = 4
DEFAULT_MFU = 0.35  # model FLOPs utilisation of a tuned training loop
# CUDA context, cuBLAS workspace and allocator slack per GPU.
CUDA_OVERHEAD_BYTES = 1 << 30


class FinetuneError(ValueError):
    """A fine-tuning request that cannot be planned; the message says what to change."""


@dataclass(frozen=True)
class FinetuneRequest:
    """What to fine-tune, how, and on what."""

    model: ModelSpec
    gpu: GpuSpec
    method: str = "lora"
    gpus: int = 1
    seq_len: int = 2048
    micro_batch: int = 1
    lora_rank: int = 16
    target_modules: Sequence[str] = DEFAULT_TARGETS
    optimizer: str = "adamw"
    gradient_checkpointing: bool = True
    dataset_tokens: int = 10_000_000  # tokens per epoch
    epochs: float = 1.0
    mfu: float = DEFAULT_MFU
    compute_bytes: int = 2  # activations and frozen weights: 2 (bf16) or 4 (fp32)
    usd_per_gpu_hour: float | None = None


@dataclass(frozen=True)
class FinetuneEstimate:
    """Memory per GPU by part, whether it fits, and time and cost per epoch."""

    method: str
    parameters: int
    trainable_parameters: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    loss_bytes: int
    overhead_bytes: int
    total_bytes: int
    budget_bytes: int
    fits: bool
    time_per_epoch_s: float
    tokens_per_s: float
    usd_per_epoch: float | None
    assumptions: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def lora_parameters(spec: ModelSpec, rank: int, targets: Sequence[str]) -> int:
    """Adapter parameters: rank x (in + out) for every targeted Linear."""
    names = {LORA_TARGETS[t] for t in targets}
    total = 0
    for t in tensor_inventory(spec):
        if t.linear is None or t.layer is None:
            continue
        kind = t.name.split(".")[-2]
        if kind in names:
            n_in, n_out, count = t.linear
            total += rank * (n_in + n_out) * count
    return total


def activation_bytes_per_token_layer(
    spec: ModelSpec, compute_bytes: int, lora_rank: int, lora_modules: int
) -> int:
    """Bytes one Llama-style block keeps for backward, per token (SDPA attention).

    Norms run in fp32 (input, normalised copy) and hand a compute-dtype copy on;
    q and the kv heads (expanded to every query head, as Hugging Face's repeat_kv
    does) and the attention output go to SDPA; the output projection, the gate's
    activation, the gated product and the down projection keep their inputs.
    """
    h = spec.hidden_size
    q = spec.num_attention_heads * spec.head_dim
    ffn = spec.intermediate_size
    norms = 2 * (2 * FP32 * h + compute_bytes * h)
    attention = compute_bytes * (q + 2 * q + q + q)
    mlp = compute_bytes * 4 * ffn
    adapters = compute_bytes * lora_rank * lora_modules
    return norms + attention + mlp + adapters


def loss_bytes(spec: ModelSpec, tokens: int, compute_bytes: int) -> int:
    """Peak of the loss: logits, their fp32 copy, log-softmax and its gradient."""
    return tokens * spec.vocab_size * (2 * compute_bytes + 3 * FP32)


def _validate(req: FinetuneRequest) -> None:
    if req.method not in METHODS:
        raise FinetuneError(f"method: must be one of {', '.join(METHODS)}")
    if req.optimizer not in OPTIMIZERS:
        raise FinetuneError(f"optimizer: must be one of {', '.join(OPTIMIZERS)}")
    for name, low, high in (
        ("seq_len", 1, 10_000_000),
        ("micro_batch", 1, 4096),
        ("lora_rank", 1, 4096),
        ("gpus", 1, 8),
        ("dataset_tokens", 1, 10**15),
    ):
        value = getattr(req, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FinetuneError(f"{name}: must be a whole number")
        if not low <= value <= high:
            raise FinetuneError(f"{name}: {value} is out of range ({low} to {high:,})")
    if req.seq_len > req.model.max_position_embeddings:
        raise FinetuneError(
            f"seq_len: {req.seq_len:,} is beyond the model's "
            f"{req.model.max_position_embeddings:,}-token window; use at most that"
        )
    unknown = [t for t in req.target_modules if t not in LORA_TARGETS]
    if unknown:
        raise FinetuneError(
            f"target_modules: unknown {', '.join(unknown)}; choose from "
            f"{', '.join(LORA_TARGETS)}"
        )
    if req.method != "full" and not req.target_modules:
        raise FinetuneError("target_modules: give at least one module for LoRA")
    if not 0 < req.mfu <= 1:
        raise FinetuneError("mfu: must be above 0 and at most 1")
    if req.compute_bytes not in (2, 4):
        raise FinetuneError("compute_bytes: 2 (bf16/fp16) or 4 (fp32)")
    if req.epochs <= 0:
        raise FinetuneError("epochs: must be above 0")


def estimate_finetune(req: FinetuneRequest) -> FinetuneEstimate:
    """Memory per GPU and time per epoch of one fine-tuning run."""
    _validate(req)
    spec, gpu, cb = req.model, req.gpu, req.compute_bytes
    params = parameter_breakdown(spec)
    total = params.total
    linear = sum(
        t.linear[0] * t.linear[1] * t.linear[2]
        for t in tensor_inventory(spec)
        if t.linear is not None and t.layer is not None
    )
    modules = 0 if req.method == "full" else len(set(req.target_modules))
    if req.method == "full":
        trainable = total
        weight_bytes = total * (MIXED_PRECISION_WEIGHT_BYTES if cb == 2 else FP32)
    else:
        trainable = lora_parameters(spec, req.lora_rank, req.target_modules)
        if req.method == "qlora":
            frozen = math.ceil(linear * NF4_BITS_PER_WEIGHT / 8) + (total - linear) * 2
        else:
            frozen = total * cb
        weight_bytes = frozen + trainable * FP32
    grads = trainable * FP32
    optim = trainable * (2 if req.optimizer == "adamw-8bit" else 8)
    tokens = req.seq_len * req.micro_batch
    per_layer = activation_bytes_per_token_layer(spec, cb, req.lora_rank, modules)
    if req.gradient_checkpointing:
        acts = tokens * (spec.num_layers * spec.hidden_size * cb + per_layer)
    else:
        acts = tokens * spec.num_layers * per_layer
    loss = loss_bytes(spec, tokens, cb)
    overhead = CUDA_OVERHEAD_BYTES if gpu.kind == "gpu" else 0
    total_bytes = weight_bytes + grads + optim + acts + loss + overhead
    budget = gpu.memory_bytes
    reasons = []
    if total_bytes > budget:
        reasons.append(
            f"needs {total_bytes / 1e9:.1f} GB per GPU, {budget / 1e9:.1f} GB on "
            f"{gpu.name}: lower micro_batch or seq_len, turn on gradient "
            "checkpointing, or use QLoRA"
        )
    # FLOPs per token: forward 2N; backward 2N for activation gradients plus 2N for
    # weight gradients of what trains; recompute adds a forward.
    matmul = params.matmul_per_token
    backward = 4 * matmul if req.method == "full" else 2 * matmul + 4 * trainable
    flops_per_token = 2 * matmul + backward
    if req.gradient_checkpointing:
        flops_per_token += 2 * matmul
    peak, dtype = compute_tflops(gpu, "bf16" if cb == 2 else "fp32")
    rate = max(peak * 1e12 * req.mfu * req.gpus, 1.0)
    tokens_per_s = rate / flops_per_token
    epoch_s = req.dataset_tokens * req.epochs / tokens_per_s
    usd = (
        epoch_s / 3600 * req.usd_per_gpu_hour * req.gpus
        if req.usd_per_gpu_hour is not None
        else None
    )
    assumptions = [
        f"{req.method} with {req.optimizer}, micro-batch {req.micro_batch} x "
        f"{req.seq_len} tokens, gradient checkpointing "
        f"{'on' if req.gradient_checkpointing else 'off'}"
        + (
            f", LoRA rank {req.lora_rank} on {', '.join(req.target_modules)}"
            if req.method != "full"
            else ""
        ),
        f"data parallel over {req.gpus} GPU(s): each holds the whole model "
        "(ZeRO/FSDP sharding not modelled)",
        "loss: every token's full-vocabulary logits, upcast to fp32 as Hugging "
        "Face transformers does; a fused or chunked cross-entropy needs far less",
        f"time from {flops_per_token / 1e9:.1f} GFLOPs per token at "
        f"{req.mfu:.0%} of {gpu.name}'s {dtype} peak; an estimate",
    ]
    return FinetuneEstimate(
        method=req.method,
        parameters=total,
        trainable_parameters=trainable,
        weights_bytes=int(weight_bytes),
        gradients_bytes=int(grads),
        optimizer_bytes=int(optim),
        activations_bytes=int(acts),
        loss_bytes=int(loss),
        overhead_bytes=overhead,
        total_bytes=int(total_bytes),
        budget_bytes=budget,
        fits=not reasons,
        time_per_epoch_s=epoch_s,
        tokens_per_s=tokens_per_s,
        usd_per_epoch=usd,
        assumptions=assumptions,
        reasons=reasons,
    )
