"""Serve targets from a plan report's format, or from a job's artifact file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from planner.engine.catalog import CatalogError, get_gpu, get_model
from planner.engine.formats import FormatError, FormatSpec, parse_format
from planner.recipes.manifests import recipes_for_target
from planner.recipes.target import (
    DEFAULT_CONTEXT_TOKENS,
    MAX_CONTEXT_TOKENS,
    MAX_GPUS,
    Recipe,
    RecipeError,
    ServeTarget,
    check_filename,
    check_format,
    check_fraction,
    check_int,
    clean,
    engine_cache,
    slug,
)

_GGUF_OF_FP = {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}
# What planner/engine/offload.py writes: "-ngl N" or "-ngl N --n-cpu-moe K".
_OFFLOAD_FLAGS = re.compile(r"-ngl (\d{1,5})(?: --n-cpu-moe (\d{1,5}))?")


def _offload(result: Mapping[str, Any]) -> tuple[str, int, int, int] | None:
    """(flags, -ngl, --n-cpu-moe, host bytes) of a result's 1-GPU partial offload.

    A capacity candidate carries ``llama_cpp_flags`` and ``host_bytes``; a plan
    result an ``offload`` object. None when the result keeps everything on the GPU.
    """
    offload = result.get("offload")
    if isinstance(offload, Mapping):
        flags, host = offload.get("flags"), offload.get("host_weight_bytes")
    else:
        flags, host = result.get("llama_cpp_flags"), result.get("host_bytes")
    if not flags:
        return None
    match = _OFFLOAD_FLAGS.fullmatch(str(flags))
    if match is None:
        raise RecipeError(f"unreadable partial-offload flags {str(flags)[:60]!r}")
    host_bytes = host if isinstance(host, int) and host > 0 else 0
    return str(flags), int(match[1]), int(match[2] or 0), host_bytes


def _weights(spec: FormatSpec, gpu_has_bf16: bool) -> tuple[str, str | None, str]:
    """(vLLM --dtype, vLLM --quantization, what the model folder must hold)."""
    if spec.family in ("awq", "gptq", "rtn"):
        # The checkpoint's config.json names its method, and vLLM then picks the
        # fastest kernel the GPU has (Marlin); an explicit --quantization awq or gptq
        # would force the slow generic kernel instead.
        return "float16", None, f"the {spec.id} checkpoint a Quantplan job writes"
    if spec.id == "fp8":
        return "auto", "fp8", "the 16-bit checkpoint (vLLM quantizes it to FP8 on load)"
    if spec.id == "int8":
        return (
            "auto",
            None,
            "a W8A8 INT8 checkpoint (compressed-tensors, e.g. llm-compressor)",
        )
    dtype = {"fp32": "float32", "fp16": "float16"}.get(spec.id, "bfloat16")
    if dtype == "bfloat16" and not gpu_has_bf16:
        dtype = "float16"  # GPUs before Ampere have no bf16
    return dtype, None, "the model's own checkpoint"


def _model_info(report: Mapping[str, Any]) -> tuple[str, str, str]:
    """(model id, Hugging Face id or '', display name) from a report's ``model``."""
    model = report.get("model")
    if isinstance(model, Mapping):
        model_id = str(model.get("id") or "custom")
        return (
            model_id,
            str(model.get("hf_id") or ""),
            str(model.get("name") or model_id),
        )
    model_id = str(model or "custom")
    try:
        entry = get_model(model_id)
    except CatalogError:
        return model_id, model_id if model_id.count("/") == 1 else "", model_id
    return model_id, entry.hf_id, entry.name


def _device(
    report: Mapping[str, Any], result: Mapping[str, Any]
) -> tuple[str, str, str, bool]:
    """(kind, vendor, name, has bf16) of the planned device; a user's GPU is a GPU."""
    gpu = report.get("gpu")
    info: Mapping[str, Any] = gpu if isinstance(gpu, Mapping) else {}
    gpu_id = str(info.get("id") or gpu or result.get("gpu") or "")
    try:
        spec = get_gpu(gpu_id)
    except CatalogError:
        name = str(info.get("name") or result.get("gpu_name") or gpu_id)
        return (
            str(info.get("kind") or "gpu"),
            str(info.get("vendor") or "nvidia"),
            name,
            True,
        )
    return spec.kind, spec.vendor, spec.name, bool(spec.tflops_for("bf16"))


def _same_format(value: object, spec: FormatSpec) -> bool:
    try:
        return isinstance(value, str) and parse_format(value).id == spec.id
    except FormatError:
        return False


def _first_int(
    sources: Sequence[Mapping[str, Any]], keys: Sequence[str], default: int
) -> int:
    for source in sources:
        for key in keys:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return check_int(key, value, 1, MAX_CONTEXT_TOKENS)
    return default


def _host_bytes(result: Mapping[str, Any], kind: str) -> int:
    # On a CPU "device" the whole plan lives in RAM; on a GPU only the host share.
    value = result.get("total_bytes_per_gpu" if kind == "cpu" else "host_bytes")
    return value if isinstance(value, int) and value > 0 else 0


def served_name(model: str, spec: FormatSpec) -> str:
    """The API model name: the model's slug and the format's."""
    suffix = slug(spec.id, 30)
    return f"{slug(model, 62 - len(suffix))}-{suffix}"


def plan_formats(report: Mapping[str, Any]) -> list[str]:
    """The formats a plan report has results for, in its order."""
    return [
        str(r["format"])
        for r in report.get("results") or []
        if isinstance(r, Mapping) and isinstance(r.get("format"), str)
    ]


def default_format(report: Mapping[str, Any]) -> str | None:
    """The format recipes show first: the recommended one, else the first that fits."""
    formats = plan_formats(report)
    recommendation = report.get("recommendation")
    if isinstance(recommendation, Mapping) and recommendation.get("format") in formats:
        return str(recommendation["format"])
    results = [r for r in report.get("results") or [] if isinstance(r, Mapping)]
    fitting = [str(r.get("format")) for r in results if r.get("fits")]
    candidates = fitting or formats
    return candidates[0] if candidates else None


def _model_ref(
    spec: FormatSpec, engine: str, model_id: str, hf_id: str, model_file: str | None
) -> tuple[str, bool, list[str]]:
    """(model reference, whether it is a local file or folder, notes)."""
    if model_file is not None:
        check_filename(model_file)
        if engine == "llama.cpp":
            return model_file, True, []
        return _unpacked(model_file), True, []
    if engine == "llama.cpp":
        gguf_type = spec.gguf_type or _GGUF_OF_FP[spec.id]
        note = f"Model file: a {gguf_type} GGUF (a Quantplan GGUF job writes one)."
        return f"{slug(model_id)}-{gguf_type}.gguf", True, [note]
    if spec.family == "fp" and hf_id:
        return hf_id, False, []
    _dtype, _quant, holds = _weights(spec, gpu_has_bf16=True)
    return f"{slug(model_id)}-{slug(spec.id)}", True, [f"Model folder: {holds}."]


def _unpacked(filename: str) -> str:
    return check_filename(filename.removesuffix(".tar"))


def _unpack_note(filename: str, model_dir: str) -> str:
    folder = f"{clean(model_dir)}/{_unpacked(filename)}"
    return (
        f"Unpack first: mkdir -p {folder} && "
        f"tar -xf {filename} -C {folder} --strip-components=1"
    )


def recipes_for_plan_result(
    report: Mapping[str, Any],
    fmt: str,
    *,
    request: Mapping[str, Any] | None = None,
    model_file: str | None = None,
    source: str = "",
    model_dir: str = "./models",
    port: int = 0,
) -> list[Recipe]:
    """Recipes for one format of a plan report (``PlanReport.to_dict()``).

    ``request`` is the plan's saved input, for the numbers a report does not echo
    (context, concurrency, memory share, KV cache type). ``model_file`` names the
    artifact to serve (a GGUF, or a checkpoint's tar) instead of the model's name.
    """
    spec = check_format(fmt)
    results = [r for r in report.get("results") or [] if isinstance(r, Mapping)]
    result = next((r for r in results if _same_format(r.get("format"), spec)), None)
    if result is None:
        known = ", ".join(plan_formats(report)) or "none"
        raise RecipeError(
            f"this plan has no result for {spec.id}; choose one of: {known}"
        )
    echoed = report.get("request")
    asked = {**(request or {}), **(echoed if isinstance(echoed, Mapping) else {})}
    plan_engine = str(result.get("engine") or report.get("engine") or "vllm")
    to_gguf = plan_engine == "llama.cpp" and spec.id in _GGUF_OF_FP
    engine = "llama.cpp" if spec.family == "gguf" or to_gguf else "vllm"
    kind, vendor, gpu_name, has_bf16 = _device(report, result)
    model_id, hf_id, model_name = _model_info(report)
    ref, local, notes = _model_ref(spec, engine, model_id, hf_id, model_file)
    if model_file is not None and engine == "vllm":
        notes.append(_unpack_note(model_file, model_dir))
    gpus = check_int("gpus", result.get("gpus") or 1, 1, MAX_GPUS)
    offload = _offload(result) if engine == "llama.cpp" and kind == "gpu" else None
    gpu_layers, cpu_moe_layers, host_bytes = None, 0, _host_bytes(result, kind)
    if offload is not None and gpus == 1:
        flags, gpu_layers, cpu_moe_layers, host_bytes = offload
        notes.append(
            f"Partial offload as planned: {flags} keeps "
            f"{host_bytes / 1e9:.1f} GB of weights in host RAM."
        )
        if cpu_moe_layers:
            notes.append(
                "llama-cpp-python and Ollama cannot keep MoE experts in RAM: "
                "serve it with llama-server."
            )
    elif offload is not None:
        notes.append(
            f"On one GPU instead: add {offload[0]} to llama-server "
            f"({offload[3] / 1e9:.1f} GB of weights in host RAM)."
        )
    if not result.get("fits", True) and gpu_layers is None:
        reasons = "; ".join(str(r) for r in result.get("unfit_reasons") or [])
        notes.append(f"WARNING: the plan says this does not fit: {reasons or 'see it'}")
    if engine != plan_engine:
        notes.append(f"Planned for {plan_engine}; {engine} is what loads {spec.id}.")
    context = _first_int(
        (result, asked), ("context_tokens", "context"), DEFAULT_CONTEXT_TOKENS
    )
    concurrency = _first_int((result, asked), ("concurrency", "sequences"), 1)
    max_context = result.get("max_context_tokens")
    if isinstance(max_context, int) and 0 < max_context < context:
        notes.append(f"The plan fits at most {max_context:,} tokens per sequence.")
    if kind == "gpu" and vendor != "nvidia":
        notes.append(
            f"The images here are NVIDIA CUDA builds; {vendor} GPUs need their own."
        )
    if kind == "apple":
        notes.append("Containers cannot use Apple GPUs: run the command natively.")
    dtype, quant, _holds = (
        _weights(spec, has_bf16) if engine == "vllm" else ("auto", None, "")
    )
    cache, cache_notes = engine_cache(engine, asked.get("kv_cache_dtype", "f16"))
    utilization = asked.get("gpu_memory_utilization", 0.9)
    target = ServeTarget(
        engine=engine,
        format=spec.id,
        model_label=model_name,
        served_name=served_name(model_id, spec),
        model_ref=ref,
        model_is_local=local,
        context_tokens=context,
        concurrency=concurrency,
        gpus=gpus,
        device_kind=kind,
        gpu_vendor=vendor,
        gpu_name=gpu_name,
        gpu_memory_utilization=check_fraction("gpu_memory_utilization", utilization),
        kv_cache_dtype=cache,
        weight_dtype=dtype,
        quantization=quant,
        host_memory_bytes=host_bytes,
        gpu_layers=gpu_layers,
        cpu_moe_layers=cpu_moe_layers,
        model_dir=model_dir,
        port=port,
        source=source,
        notes=(*notes, *cache_notes),
    )
    return recipes_for_target(target)


def recipes_for_artifact(
    *,
    filename: str,
    fmt: str,
    model_name: str,
    model_label: str = "",
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    concurrency: int = 1,
    gpus: int = 1,
    device_kind: str | None = None,
    gpu_name: str = "",
    gpu_memory_utilization: float = 0.9,
    kv_cache_dtype: str = "f16",
    model_dir: str = "./models",
    host: str = "127.0.0.1",
    port: int = 0,
    source: str = "",
) -> list[Recipe]:
    """Recipes that serve a file a job produced: a GGUF, or a tar of a checkpoint.

    Without a plan's device a GGUF runs on the CPU and a checkpoint on one GPU.
    ``model_name`` is the model the file holds (the served name is made from it);
    ``model_label`` its display name for comments (default: ``model_name``).
    """
    spec = check_format(fmt)
    check_filename(filename)
    notes: list[str] = []
    if spec.family == "gguf":
        engine, ref, kind = "llama.cpp", filename, device_kind or "cpu"
        dtype, quant = "auto", None
    else:
        engine, ref, kind = "vllm", _unpacked(filename), device_kind or "gpu"
        notes.append(_unpack_note(filename, model_dir))
        dtype, quant, _holds = _weights(spec, gpu_has_bf16=True)
    cache, cache_notes = engine_cache(engine, kv_cache_dtype)
    target = ServeTarget(
        engine=engine,
        format=spec.id,
        model_label=model_label or model_name,
        served_name=served_name(model_name, spec),
        model_ref=ref,
        model_is_local=True,
        context_tokens=context_tokens,
        concurrency=concurrency,
        gpus=gpus,
        device_kind=kind,
        gpu_name=gpu_name,
        gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_dtype=cache,
        weight_dtype=dtype,
        quantization=quant,
        model_dir=model_dir,
        host=host,
        port=port,
        source=source,
        notes=(*notes, *cache_notes),
    )
    return recipes_for_target(target)


def recipes_for_capacity_candidate(
    report: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    source: str = "",
) -> list[Recipe]:
    """Recipes for one candidate of a capacity report (``CapacityReport.to_dict()``).

    A candidate serves sequences of prompt + output tokens, as many at once as it
    meets the targets with; a partial-offload candidate's flags reach llama.cpp.
    """
    workload = report.get("workload")
    w: Mapping[str, Any] = workload if isinstance(workload, Mapping) else {}
    prompt, output = w.get("prompt_tokens"), w.get("output_tokens")
    context = (
        prompt + output
        if isinstance(prompt, int) and isinstance(output, int)
        else DEFAULT_CONTEXT_TOKENS
    )
    result = {
        **candidate,
        "context_tokens": context,
        "concurrency": max(1, int(candidate.get("concurrency") or 1)),
    }
    fmt = str(candidate.get("format") or "")
    plan_like = {"model": report.get("model"), "gpu": candidate.get("gpu"),
                 "results": [result]}  # fmt: skip
    return recipes_for_plan_result(plan_like, fmt, source=source)
