"""A real LoRA training step with torch, its peak memory against the projection.

Builds SmolLM2-135M (the catalog config, random weights, fp32 on the CPU) with
Hugging Face transformers, wraps the targeted Linears with LoRA written in plain
torch, and runs one AdamW step (forward, loss, backward, optimizer) in a fresh
process. Peak memory is the process's peak resident set (``VmHWM``, reset just
before the model is built) minus what it held before: weights, adapters,
gradients, optimizer states, activations and the loss, as the projection counts
them. Run ``python bench/finetune_memory.py [--seq-len N --micro-batch B]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL_ID = "smollm2-135m-instruct"

_CHILD = r"""
import json, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

args = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(2)

class LoRALinear(torch.nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.lora_a = torch.nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = torch.nn.Linear(rank, base.out_features, bias=False)
        torch.nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / rank
    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x)) * self.scale

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
config = LlamaConfig(**args["config"])
config._attn_implementation = "sdpa"
model = LlamaForCausalLM(config).float()
model.requires_grad_(False)
targets = set(args["targets"])
for layer in model.model.layers:
    for owner in (layer.self_attn, layer.mlp):
        for name in list(owner._modules):
            if name in targets:
                setattr(owner, name, LoRALinear(getattr(owner, name), args["rank"], 2 * args["rank"]))
if args["checkpointing"]:
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
model.train()
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=1e-4)
ids = torch.randint(0, config.vocab_size, (args["micro_batch"], args["seq_len"]))
out = model(input_ids=ids, labels=ids)
out.loss.backward()
opt.step()
peak = status("VmHWM")
print(json.dumps({"peak_bytes": peak - before, "trainable": sum(p.numel() for p in trainable),
                  "loss": float(out.loss)}))
"""


def measure(
    *,
    seq_len: int = 512,
    micro_batch: int = 2,
    rank: int = 16,
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    checkpointing: bool = False,
) -> dict[str, object]:
    """Run the step in a fresh process; return measured and projected bytes."""
    from planner.engine import get_gpu, get_model
    from planner.engine.finetune import FinetuneRequest, estimate_finetune

    entry = get_model(MODEL_ID)
    config = {
        k: v
        for k, v in entry.config.items()
        if k not in ("architectures", "model_type", "torch_dtype")
    }
    payload = {
        "config": config,
        "seq_len": seq_len,
        "micro_batch": micro_batch,
        "rank": rank,
        "targets": list(targets),
        "checkpointing": checkpointing,
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    estimate = estimate_finetune(
        FinetuneRequest(
            model=entry.spec,
            gpu=get_gpu("cpu-generic-ddr5"),
            method="lora",
            seq_len=seq_len,
            micro_batch=micro_batch,
            lora_rank=rank,
            target_modules=targets,
            gradient_checkpointing=checkpointing,
            compute_bytes=4,
        )
    )
    peak = int(measured["peak_bytes"])
    return {
        "measured_peak_bytes": peak,
        "projected_bytes": estimate.total_bytes,
        "error_pct": (estimate.total_bytes - peak) / peak * 100,
        "measured_trainable": measured["trainable"],
        "projected_trainable": estimate.trainable_parameters,
        "parts": {
            k: getattr(estimate, k)
            for k in (
                "weights_bytes",
                "gradients_bytes",
                "optimizer_bytes",
                "activations_bytes",
                "loss_bytes",
            )
        },
    }


def main() -> None:
    """Run one configuration and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--checkpointing", action="store_true")
    args = parser.parse_args()
    r = measure(
        seq_len=args.seq_len,
        micro_batch=args.micro_batch,
        rank=args.rank,
        checkpointing=args.checkpointing,
    )
    print(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
