"""Writing the GPTQ checkpoint layout and loading any of our layouts into torch.

We write one layout for RTN and GPTQ, the standard GPTQ one (``quant_method:
gptq``, ``checkpoint_format: gptq``), because it covers 2/3/4/8 bits and
per-channel grids, and transformers (with optimum/gptqmodel) and vLLM load it.
AWQ artifacts come from autoawq in its GEMM layout.

For evaluation on a CPU worker none of those kernels is available (autoawq's CPU
path needs intel-extension-for-pytorch, which does not support our torch), so
:func:`load_causal_lm` unpacks the integers into ordinary float ``nn.Linear``
weights. The numbers are then exactly those the kernels compute with; only the
speed differs from a real deployment.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantjobs.backends.base import BackendError
from quantjobs.backends.torchq.formats import WeightFormat
from quantjobs.backends.torchq.packing import (
    dequantize_awq,
    dequantize_gptq,
    pack_gptq,
)
from quantjobs.backends.torchq.quantizer import QuantizedWeight

# Files besides the weights that make a checkpoint usable (tokenizer, decoding).
SIDE_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
MAX_SHARD_BYTES = 4 * 1024**3
QUANT_SUFFIXES = (".qweight", ".qzeros", ".scales", ".g_idx")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for evaluation, with what it took to get there."""

    model: nn.Module
    tokenizer: Any
    quant_method: str | None  # None for a plain float checkpoint
    dtype: torch.dtype
    device: torch.device


def gptq_quantization_config(
    fmt: WeightFormat, damp_percent: float | None, quantizer: str
) -> dict[str, Any]:
    """``quantization_config`` for config.json in the GPTQ layout.

    ``damp_percent=None`` (RTN: no solver) leaves the key out; transformers'
    ``GPTQConfig`` refuses 0.
    """
    config: dict[str, Any] = {
        "quant_method": "gptq",
        "checkpoint_format": "gptq",
        "bits": fmt.bits,
        "group_size": fmt.group_size,
        "desc_act": fmt.desc_act,
        "sym": fmt.sym,
        "true_sequential": True,
        "static_groups": False,
        "lm_head": False,
        # Provenance, where GPTQModel keeps it; loaders ignore it.
        "meta": {"quantizer": [quantizer]},
    }
    if damp_percent is not None:
        config["damp_percent"] = damp_percent
    return config


def save_gptq_checkpoint(
    model: nn.Module,
    quantized: dict[str, QuantizedWeight],
    out_dir: Path,
    source_dir: Path,
    quantization_config: dict[str, Any],
) -> list[Path]:
    """Write ``model`` with ``quantized`` linears packed; returns the weight files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _gptq_state_dict(model, quantized)
    files = _save_safetensors(state, out_dir)

    config = model.config.to_dict()  # type: ignore[union-attr, operator]
    config.pop("_name_or_path", None)
    config["torch_dtype"] = "float16"
    config["quantization_config"] = quantization_config
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    # AutoGPTQ-era tools read the grid from this file rather than config.json.
    legacy = {k: v for k, v in quantization_config.items() if k != "quant_method"}
    legacy["quant_method"] = "gptq"
    (out_dir / "quantize_config.json").write_text(
        json.dumps(legacy, indent=2, sort_keys=True)
    )
    copy_side_files(source_dir, out_dir)
    return files


def copy_side_files(source_dir: Path, out_dir: Path) -> None:
    """Copy tokenizer and generation files so the artifact stands on its own."""
    for name in SIDE_FILES:
        src = source_dir / name
        if src.is_file():
            shutil.copyfile(src, out_dir / name)


def _gptq_state_dict(
    model: nn.Module, quantized: dict[str, QuantizedWeight]
) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    tied = _tied_output_weight(model)
    for name, tensor in model.state_dict().items():
        if name == tied:
            continue  # safetensors stores no aliases; the loader re-ties it
        module_name, _, leaf = name.rpartition(".")
        if module_name in quantized and leaf == "weight":
            continue
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        state[name] = tensor.detach().cpu().contiguous()
    for module_name, q in quantized.items():
        qweight, qzeros = pack_gptq(q.intweight.cpu(), q.zeros.cpu(), q.bits)
        state[f"{module_name}.qweight"] = qweight
        state[f"{module_name}.qzeros"] = qzeros
        # clone(): layers solved together share one g_idx, and safetensors
        # refuses tensors that share memory.
        state[f"{module_name}.scales"] = q.scales.cpu().to(torch.float16).clone()
        state[f"{module_name}.g_idx"] = q.g_idx.cpu().to(torch.int32).clone()
    return state


def _tied_output_weight(model: nn.Module, require_shared: bool = True) -> str | None:
    """Name of ``lm_head.weight`` when the config ties it to the input embedding.

    With ``require_shared`` the two must already be one tensor (saving); without,
    the config alone decides (loading, before ``tie_weights`` has run).
    """
    config = getattr(model, "config", None)
    if not getattr(config, "tie_word_embeddings", False):
        return None
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    if get_in is None or get_out is None:
        return None
    emb, head = get_in(), get_out()
    if head is None or (require_shared and head.weight is not emb.weight):
        return None
    for name, module in model.named_modules():
        if module is head:
            return f"{name}.weight"
    return None


def _save_safetensors(state: dict[str, torch.Tensor], out_dir: Path) -> list[Path]:
    """One ``model.safetensors``, or shards plus the standard index when large."""
    from safetensors.torch import save_file

    metadata = {"format": "pt"}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if shards[-1] and size + nbytes > MAX_SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = state[name]
        size += nbytes
    if len(shards) == 1:
        path = out_dir / "model.safetensors"
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    paths: list[Path] = []
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out_dir / fname), metadata=metadata)
        paths.append(out_dir / fname)
        weight_map.update({name: fname for name in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps(index, indent=2, sort_keys=True)
    )
    return paths


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a model directory as a dict."""
    config: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
    return config


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a directory, in a stable order."""
    return sorted(p for p in model_dir.iterdir() if fnmatch(p.name, "*.safetensors"))


def iter_tensors(files: Iterable[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """Every ``(name, tensor)`` of the given safetensors files."""
    from safetensors import safe_open

    for path in files:
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open is no Mapping
                yield name, fh.get_tensor(name)


def dequantized_state_dict(
    model_dir: Path, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, torch.Tensor], str | None]:
    """All weights of a checkpoint as floats: packed layers are unpacked."""
    qc = read_config(model_dir).get("quantization_config")
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    if qc is not None and method not in ("gptq", "awq"):
        raise BackendError(
            f"Checkpoints quantized with {method!r} cannot be evaluated here; "
            "only plain, GPTQ and AWQ (GEMM) checkpoints can."
        )
    raw = dict(iter_tensors(weight_files(model_dir)))
    if method is None:
        return {k: v.to(dtype) for k, v in raw.items()}, None
    assert isinstance(qc, dict)
    bits = int(qc.get("bits") or qc.get("w_bit") or 4)
    group = int(qc.get("group_size") or qc.get("q_group_size") or 128)
    if method == "awq":
        version = str(qc.get("version", "gemm")).lower()
        if version != "gemm" or bits != 4:
            raise BackendError(
                f"AWQ {version} {bits}-bit checkpoints cannot be unpacked here; "
                "only 4-bit GEMM ones can."
            )
    v2 = method == "gptq" and qc.get("checkpoint_format") == "gptq_v2"
    out: dict[str, torch.Tensor] = {}
    prefixes = {k[: -len(".qweight")] for k in raw if k.endswith(".qweight")}
    for name, tensor in raw.items():
        prefix = next((name[: -len(s)] for s in QUANT_SUFFIXES if name.endswith(s)), "")
        if prefix in prefixes:
            continue
        out[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    for prefix in sorted(prefixes):
        qweight, qzeros = raw[f"{prefix}.qweight"], raw[f"{prefix}.qzeros"]
        scales = raw[f"{prefix}.scales"]
        if method == "awq":
            weight = dequantize_awq(qweight, qzeros, scales, group)
        else:
            g_idx = raw.get(f"{prefix}.g_idx")
            in_features = qweight.shape[0] * 32 // bits
            if g_idx is None:
                g = in_features if group == -1 else group
                g_idx = torch.arange(in_features, dtype=torch.int32) // g
            weight = dequantize_gptq(qweight, qzeros, scales, g_idx, bits)
            if v2:  # GPTQModel's internal format stores the zero point itself
                weight = weight + scales.float()[g_idx.long()].t()
        out[f"{prefix}.weight"] = weight.to(dtype)
    return out, str(method)


def load_causal_lm(
    model_dir: Path, device: torch.device, dtype: torch.dtype | None = None
) -> LoadedModel:
    """Load a checkpoint directory for evaluation, packed layers as float weights."""
    from transformers import (  # type: ignore[attr-defined]
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
    )

    if dtype is None:
        # float16 matmuls are slow or missing on CPUs; float32 holds fp16 exactly.
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    if getattr(config, "quantization_config", None) is None:
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir),
            torch_dtype=dtype,
            use_safetensors=True,
            trust_remote_code=False,
        )
        model.to(device).eval()
        return LoadedModel(model, tokenizer, None, dtype, device)

    state, method = dequantized_state_dict(model_dir, dtype)
    del config.quantization_config  # build the plain float architecture
    model = _empty_model(config, dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_output_weight(model, require_shared=False)
    missing = [k for k in missing if k != tied]
    if missing or unexpected:
        raise BackendError(
            f"The checkpoint in {model_dir.name} does not match its config: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}."
        )
    model.tie_weights()  # type: ignore[operator]
    model.to(device).eval()
    return LoadedModel(model, tokenizer, method, dtype, device)


def _empty_model(config: Any, dtype: torch.dtype) -> nn.Module:
    """The architecture of ``config`` without spending time on random init."""
    from transformers import AutoModelForCausalLM
    from transformers.modeling_utils import no_init_weights

    with no_init_weights():
        model: nn.Module = AutoModelForCausalLM.from_config(
            config, torch_dtype=dtype, trust_remote_code=False
        )
    return model
