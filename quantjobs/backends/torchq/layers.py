"""Walking a causal LM's decoder blocks one at a time with calibration inputs.

GPTQ is sequential: block ``i`` is calibrated on the outputs of the already
quantized blocks ``0..i-1``, so it corrects the error those introduced. We capture
the inputs of block 0 once (everything the model passes it: hidden states,
position embeddings, masks), then push them through block after block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class BlockBatch:
    """One calibration mini-batch as a decoder block receives it."""

    hidden: torch.Tensor
    kwargs: dict[str, Any]


class _StopForward(Exception):
    """Raised from block 0's pre-hook: nothing after its inputs is needed."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (``model.model.layers`` for Llama & co)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError("could not find the decoder blocks of this model")


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` inside one decoder block, by name relative to the block."""
    return {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}


def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Linear layers inside decoder blocks, by full name.

    Embeddings and ``lm_head`` stay in float: they are a small share of a large
    model's weights, and quantizing them costs far more quality per byte saved.
    """
    layers = decoder_layers(model)
    prefix = _module_name(model, layers)
    found: dict[str, nn.Linear] = {}
    for i, block in enumerate(layers):
        for name, linear in block_linears(block).items():
            found[f"{prefix}.{i}.{name}"] = linear
    return found


def _module_name(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return str(name)
    raise ValueError("module is not part of the model")


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    return value


@torch.no_grad()
def capture_block_inputs(
    model: nn.Module, samples: torch.Tensor, batch_size: int, device: torch.device
) -> list[BlockBatch]:
    """Run ``samples`` ([n, seq] token ids) up to block 0 and keep its inputs."""
    layers = decoder_layers(model)
    captured: list[BlockBatch] = []

    def catch(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        kwargs = dict(kwargs)
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs.pop("past_key_value", None)
        kwargs["use_cache"] = False
        captured.append(BlockBatch(hidden.to(device), _to_device(kwargs, device)))
        raise _StopForward

    handle = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    try:
        model_device = next(model.parameters()).device
        for start in range(0, samples.shape[0], batch_size):
            batch = samples[start : start + batch_size].to(model_device)
            try:
                model(input_ids=batch, use_cache=False)
            except _StopForward:
                pass
    finally:
        handle.remove()
    return captured


def block_output(block: nn.Module, batch: BlockBatch) -> torch.Tensor:
    """Hidden states after ``block`` (decoder layers return a tuple or a tensor)."""
    out = block(batch.hidden, **batch.kwargs)
    hidden: torch.Tensor = out[0] if isinstance(out, tuple) else out
    return hidden


@torch.no_grad()
def linear_groups(block: nn.Module, batch: BlockBatch) -> list[list[str]]:
    """Block linears in call order, grouped when they read the very same input.

    For Llama-style blocks: ``[q,k,v]``, ``[o]``, ``[gate,up]``, ``[down]``. Layers
    of one group share their calibration Hessian; later groups are calibrated
    after earlier ones are quantized ("true sequential" GPTQ).
    """
    linears = block_linears(block)
    calls: list[tuple[str, torch.Tensor]] = []
    handles = [
        lin.register_forward_pre_hook(
            lambda _m, args, name=name: calls.append((name, args[0]))
        )
        for name, lin in linears.items()
    ]
    try:
        block_output(block, _first_rows(batch))
    finally:
        for h in handles:
            h.remove()
    groups: list[list[str]] = []
    last_input: torch.Tensor | None = None
    seen: set[str] = set()
    for name, inp in calls:  # inputs are kept alive by `calls`: identity is safe
        if name in seen:
            continue
        seen.add(name)
        if last_input is not None and inp is last_input:
            groups[-1].append(name)
        else:
            groups.append([name])
        last_input = inp
    missing = [n for n in linears if n not in seen]
    if missing:
        groups.append(missing)  # never called: quantize them on their weights alone
    return groups


def _first_rows(batch: BlockBatch) -> BlockBatch:
    """A 1-sample slice of a batch, enough to learn the call order cheaply."""
    hidden = batch.hidden[:1]
    kwargs = {}
    for key, value in batch.kwargs.items():
        if (
            isinstance(value, torch.Tensor)
            and value.dim() == 4
            and value.shape[0] == batch.hidden.shape[0]
        ):
            value = value[:1]  # a per-sample attention mask
        kwargs[key] = value
    return BlockBatch(hidden, kwargs)


def iter_linear_inputs(
    block: nn.Module, name: str, batches: list[BlockBatch]
) -> Iterator[torch.Tensor]:
    """Run ``batches`` through ``block`` just far enough to see ``name``'s input.

    The forward is cut short right after that linear is reached: for the first
    linears of a block this saves most of the block's compute.
    """
    linear = block_linears(block)[name]
    seen: list[torch.Tensor] = []

    def grab(_m: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach())
        raise _StopForward

    handle = linear.register_forward_pre_hook(grab)
    try:
        for batch in batches:
            with torch.no_grad():
                try:
                    block_output(block, batch)
                except _StopForward:
                    pass
            yield from seen
            seen.clear()
    finally:
        handle.remove()
