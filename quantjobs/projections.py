"""The planner's projection for a job's format, to stand beside what was measured."""

from __future__ import annotations

import logging
from typing import Any

from quantjobs.models import Job

logger = logging.getLogger(__name__)

EVAL_CONTEXT_TOKENS = 512
CPU_DEVICE_ID = "cpu-generic-ddr5"


def job_model_spec(job: Job) -> tuple[Any, str]:
    """(ModelSpec or None, where it came from or why there is none) for a job's source."""
    from planner.engine import CatalogError
    from planner.engine.catalog import get_model
    from quantjobs.modelspec import ModelSpecError, spec_from_json

    stored = job.model_spec or {}
    if stored and "error" not in stored:
        try:
            return spec_from_json(stored), str(stored.get("source") or "source model")
        except ModelSpecError as exc:
            logger.warning("job %s: stored spec unreadable: %s", job.pk, exc)
    if job.model_id:
        try:
            return get_model(job.model_id).spec, f"catalog {job.model_id}"
        except CatalogError:
            pass
    return None, str(stored.get("error") or "the source model's shape is not known")


def projection_for(job: Job, fmt: str) -> dict[str, Any]:
    """Projected artifact size and memory for ``fmt`` of the job's model, if known."""
    if job.method == Job.Method.SELFTEST:
        return {}
    from planner.engine import (
        artifact_bytes,
        estimate_memory,
        estimate_speed,
        parse_format,
    )
    from planner.engine.catalog import get_gpu

    spec, source = job_model_spec(job)
    if spec is None:
        return {"unavailable": f"No projection: {source}"}
    try:
        parsed = parse_format(fmt)
        context = int(job.options.get("context_tokens", EVAL_CONTEXT_TOKENS))
        if runtime_for_format(parsed.family) != LLAMA_CPP_CPU:
            return _no_memory_projection(job.model_id, artifact_bytes(spec, parsed))
        # The worker measures the model loaded alone in llama.cpp (GGUF) or torch on
        # its CPU, one sequence at the evaluation context: project the same thing.
        cpu = get_gpu(CPU_DEVICE_ID)
        memory = estimate_memory(
            spec,
            parsed,
            cpu,
            engine="llama.cpp",
            gpus=1,
            context_tokens=context,
            sequences=1,
        )
        speed = estimate_speed(
            spec,
            parsed,
            cpu,
            engine="llama.cpp",
            gpus=1,
            concurrency=1,
            prompt_tokens=context // 2,
            output_tokens=context - context // 2,
        )
        return {
            "model_id": job.model_id or spec.model_id,
            "model_name": spec.name,
            "spec_source": source,
            "artifact_bytes": artifact_bytes(spec, parsed),
            "weights_bytes": memory.weights_bytes_per_gpu,
            "kv_cache_bytes": memory.kv_cache_bytes_per_gpu,
            "memory_bytes": memory.total_bytes_per_gpu,
            "prompt_tokens_per_s": round(speed.prefill_tokens_per_s, 2),
            "generation_tokens_per_s": round(speed.decode_tokens_per_s, 2),
            "context_tokens": context,
            "engine": "llama.cpp on CPU",
            "device": CPU_DEVICE_ID,
        }
    except Exception:  # a projection must never fail the job it describes
        logger.warning("no projection for %s %s", spec.model_id, fmt, exc_info=True)
        return {}


LLAMA_CPP_CPU = "llama.cpp on CPU"
NO_PROJECTION = "no projection for this runtime"


def runtime_for_format(family: str) -> str:
    """The runtime a worker loads a format's artifact with, to measure it."""
    return LLAMA_CPP_CPU if family == "gguf" else "torch (transformers)"


def _no_memory_projection(model_id: str, size: int) -> dict[str, Any]:
    # Torch formats are loaded by transformers, whose footprint (dequantized or
    # packed weights, activations, allocator) the engine does not model: say so
    # rather than hold the measurement against llama.cpp's model.
    return {
        "model_id": model_id,
        "artifact_bytes": size,
        "memory_bytes": None,
        "memory_note": NO_PROJECTION,
        "engine": "torch (transformers)",
    }


def fingerprint_of_worker(hostname: str) -> dict[str, Any] | None:
    """The fingerprint the worker ``hostname`` last announced, if any."""
    from quantjobs.models import WorkerHeartbeat

    caps = (
        WorkerHeartbeat.objects.filter(hostname=hostname)
        .values_list("capabilities", flat=True)
        .first()
    )
    fingerprint = (caps or {}).get("fingerprint") if isinstance(caps, dict) else None
    return fingerprint if isinstance(fingerprint, dict) and fingerprint else None


def device_projection_for(
    job: Job, fmt: str, fingerprint: dict[str, Any] | None, serving: dict[str, Any]
) -> dict[str, Any]:
    """Projected pp/tg tokens/s and memory of ``fmt`` on the worker's own device.

    ``serving`` is the measurement's record (its pp/tg sizes and threads);
    ``fingerprint`` the worker's announcement (bandwidth, CPU), merged with
    what the serving process itself reported (cores used, llama.cpp build).
    """
    if job.method == Job.Method.SELFTEST:
        return {}
    from planner.engine import estimate_memory, estimate_speed, parse_format
    from planner.engine.device import WorkerFingerprint, device_from_fingerprint

    try:
        parsed = parse_format(fmt)
        if runtime_for_format(parsed.family) != LLAMA_CPP_CPU:
            return {"speed_note": NO_PROJECTION}
        spec, _source = job_model_spec(job)
        if not serving or spec is None:
            return {}
        merged = {
            **(fingerprint or {}),
            "cores_used": serving.get("threads")
            or (fingerprint or {}).get("cores_used"),
            "system_info": serving.get("system_info")
            or (fingerprint or {}).get("system_info"),
            "cpu_model": serving.get("cpu_model")
            or (fingerprint or {}).get("cpu_model"),
        }
        device = device_from_fingerprint(WorkerFingerprint.from_dict(merged))
        pp = int(serving.get("prompt", {}).get("tokens") or 512)
        tg = int(serving.get("generation", {}).get("tokens") or 128)
        prompt = estimate_speed(
            spec, parsed, device, engine="llama.cpp", gpus=1, concurrency=1,
            prompt_tokens=pp, output_tokens=0,
        )  # fmt: skip
        generation = estimate_speed(
            spec, parsed, device, engine="llama.cpp", gpus=1, concurrency=1,
            prompt_tokens=0, output_tokens=tg,
        )  # fmt: skip
        # Memory again for this device: its llama.cpp build decides which
        # matrices are repacked (AVX-512 also repacks Q2_K).
        context = int(serving.get("context_tokens") or EVAL_CONTEXT_TOKENS)
        memory = estimate_memory(
            spec, parsed, device, engine="llama.cpp", gpus=1,
            context_tokens=context, sequences=1,
        )  # fmt: skip
        fingerprint = WorkerFingerprint.from_dict(merged).to_dict()
        pp_value, pp_basis = _calibrated(
            fingerprint,
            parsed.family,
            "prompt_tokens_per_s",
            prompt.prefill_tokens_per_s,
        )
        tg_value, tg_basis = _calibrated(
            fingerprint,
            parsed.family,
            "generation_tokens_per_s",
            generation.decode_tokens_per_s,
        )
        return {
            "memory_bytes": memory.total_bytes_per_gpu,
            "weights_bytes": memory.weights_bytes_per_gpu,
            "kv_cache_bytes": memory.kv_cache_bytes_per_gpu,
            "context_tokens": context,
            "prompt_tokens_per_s": pp_value,
            "generation_tokens_per_s": tg_value,
            "roofline_prompt_tokens_per_s": prompt.prefill_tokens_per_s,
            "roofline_generation_tokens_per_s": generation.decode_tokens_per_s,
            "prompt_speed_basis": pp_basis,
            "speed_basis": tg_basis,
            "speed_device": device.name,
            "fingerprint": fingerprint,
        }
    except Exception:  # a projection must never fail the job it describes
        logger.warning(
            "no speed projection for %s %s", job.model_id, fmt, exc_info=True
        )
        return {}


def _calibrated(
    fingerprint: dict[str, Any], family: str, quantity: str, roofline: float
) -> tuple[float, str]:
    """The roofline refitted from this device's ledger, when it has enough runs."""
    from planner.engine.calibration import calibrated
    from quantjobs.calibration import device_key, speed_efficiency

    efficiency = speed_efficiency(
        device=device_key(fingerprint),
        engine=LLAMA_CPP_CPU,
        format_family=family,
        quantity=quantity,
    )
    return calibrated(roofline, efficiency)


def compare(projected: float | None, measured: float | None) -> float | None:
    """Difference of measured from projected, in % of the projection."""
    if not projected or measured is None:
        return None
    return round((measured - projected) / projected * 100.0, 2)
