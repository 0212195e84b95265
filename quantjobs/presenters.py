"""How a job's results read, for the API and the pages alike (both call these; the
API's serializer only wraps :func:`result_row`)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from planner.engine.quality import perplexity_change_pct
from quantjobs.backends.reference import from_metrics as reference_from_metrics
from quantjobs.models import JobResult
from quantjobs.projections import compare


def result_row(instance: JobResult, *, request: Any = None) -> dict[str, Any]:
    """One format's measurements beside the planner's projection, as the API returns
    them and the job page shows them."""
    metrics = instance.metrics or {}
    projection = instance.projection or {}
    artifact = instance.artifact
    size = artifact.size_bytes if artifact else None
    peak = metrics.get("peak_memory_bytes")
    ppl = metrics.get("perplexity")
    base = metrics.get("base_perplexity")
    loss = perplexity_change_pct(ppl, base, ndigits=3)
    download = None
    if artifact is not None:
        path = reverse("api-artifact-download", args=[artifact.pk])
        download = request.build_absolute_uri(path) if request else path
    return {
        "format": instance.format,
        "artifact_id": str(artifact.pk) if artifact else None,
        "artifact_bytes": size,
        "projected_artifact_bytes": projection.get("artifact_bytes"),
        "artifact_bytes_diff_pct": compare(projection.get("artifact_bytes"), size),
        "sha256": artifact.sha256 if artifact else None,
        "download_url": download,
        "perplexity": ppl,
        "base_perplexity": base,
        "perplexity_change_pct": loss,
        "kl_divergence": metrics.get("kl_divergence"),
        "top1_agreement": metrics.get("top1_agreement"),
        "tokens_evaluated": metrics.get("tokens_evaluated"),
        "prompt_tokens_per_s": metrics.get("prompt_tokens_per_s"),
        "generation_tokens_per_s": metrics.get("generation_tokens_per_s"),
        # For this worker's device when it reported one (projected_speed_device),
        # else for a generic CPU (projection "device").
        "projected_generation_tokens_per_s": projection.get("generation_tokens_per_s"),
        "projected_model": projection.get("model_name"),
        "projection_note": projection.get("unavailable"),
        "peak_memory_bytes": peak,
        "projected_memory_bytes": projection.get("memory_bytes"),
        "projected_memory_note": projection.get("memory_note"),
        "memory_diff_pct": compare(projection.get("memory_bytes"), peak),
        "gpu_peak_memory_bytes": metrics.get("gpu_peak_memory_bytes"),
        "job_peak_memory_bytes": metrics.get("job_peak_memory_bytes"),
        "load_time_s": metrics.get("load_time_s"),
        "exact_match": metrics.get("exact_match"),
        **speed_fields(metrics, projection),
        "task_quality": task_quality_fields(instance.format, metrics),
        "calibration": calibration_fields(metrics),
        "answers_download_url": _answers_url(instance, request),
        "reference": reference_from_metrics(metrics),
    }


def _answers_url(instance: JobResult, request: Any) -> str | None:
    if not ((instance.metrics or {}).get("task") or {}).get("rows"):
        return None
    path = reverse("api-job-result-answers", args=[instance.job_id, instance.format])
    return request.build_absolute_uri(path) if request else path


def calibration_fields(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Which calibration text was used and the tokens really used: the importance
    matrix's (chunks x context) or AWQ/GPTQ's (samples x sequence length)."""
    meta = metrics.get("metadata") or {}
    imatrix = meta.get("imatrix") or {}
    source = meta.get("calibration_source")
    if not source and not imatrix:
        return None
    samples = meta.get("calibration_samples")
    seq_len = meta.get("calibration_seq_len")
    tokens: int | None = None
    how = ""
    if imatrix.get("tokens"):
        tokens = int(imatrix["tokens"])
        how = f"importance matrix, {imatrix.get('chunks')} chunks"
    elif isinstance(samples, int) and isinstance(seq_len, int):
        tokens = samples * seq_len
        how = f"{samples} samples x {seq_len} tokens"
    return {
        "source": source,
        "importance_matrix": bool(imatrix),
        "imatrix_tokens": imatrix.get("tokens"),
        "imatrix_chunks": imatrix.get("chunks"),
        "imatrix_seconds": imatrix.get("seconds"),
        "calibration_samples": samples,
        "calibration_seq_len": seq_len,
        # None: this format used no calibration at all (e.g. Q8_0 without imatrix).
        "tokens_used": tokens,
        "tokens_used_how": how,
    }


def task_quality_sentence(fmt: str, task: dict[str, Any]) -> str | None:
    """'<fmt> scores within X% of the full-precision version ...', with its numbers."""
    ref = task.get("reference_normalised_match")
    score = task.get("normalised_match")
    drop = task.get("normalised_match_drop") or {}
    n = task.get("questions")
    if ref is None or score is None or not n:
        return None
    relative = task.get("normalised_match_relative_pct")
    if not ref:
        where = "the full-precision version answers none of them either"
    elif score >= ref:
        where = "at least as well as the full-precision version"
    else:
        where = f"within {abs(relative):.1f}% of the full-precision version"
    return (
        f"{fmt} scores {score * 100:.1f}% on your prompt/answer set ({n} questions, "
        f"normalised match), {where} ({ref * 100:.1f}%): a drop of "
        f"{drop.get('points', 0.0):.1f} points, 95% confidence interval "
        f"{drop.get('ci95_low_points', 0.0):.1f} to "
        f"{drop.get('ci95_high_points', 0.0):.1f}."
    )


def task_quality_fields(fmt: str, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Exact/normalised match of the format and the reference, the drop, a sentence."""
    task = metrics.get("task")
    if not task:
        return None
    summary = {k: v for k, v in task.items() if k != "rows"}
    summary["sentence"] = task_quality_sentence(fmt, task)
    return summary


def speed_fields(metrics: dict[str, Any], projection: dict[str, Any]) -> dict[str, Any]:
    """Measured speed (median, spread, conditions) beside the projected speed."""
    serving = metrics.get("serving") or {}
    measured_pp = metrics.get("prompt_tokens_per_s")
    measured_tg = metrics.get("generation_tokens_per_s")
    projected_pp = projection.get("prompt_tokens_per_s")
    projected_tg = projection.get("generation_tokens_per_s")
    memory_how = None
    if serving:
        memory_how = (
            f"peak RSS of a fresh process (pid {serving.get('pid')}) that loaded the "
            f"artifact with llama.cpp at n_ctx {serving.get('context_tokens')} and "
            "ran a warm-up decode"
        )
    return {
        "projected_prompt_tokens_per_s": projected_pp,
        "prompt_tokens_per_s_diff_pct": compare(projected_pp, measured_pp),
        "projected_generation_tokens_per_s": projected_tg,
        "generation_tokens_per_s_diff_pct": compare(projected_tg, measured_tg),
        "projected_speed_note": projection.get("speed_note"),
        "projected_speed_device": projection.get("speed_device"),
        "projected_speed_basis": projection.get("speed_basis")
        or (
            f"estimated for a generic CPU ({projection['device']})"
            if projection.get("device") and projected_tg
            else None
        ),
        "projected_prompt_speed_basis": projection.get("prompt_speed_basis"),
        "memory_measured_how": memory_how,
        "speed": (
            {
                "prompt": serving.get("prompt"),
                "generation": serving.get("generation"),
                "threads": serving.get("threads"),
                "load_average_before": serving.get("load_average_before"),
                "load_average_after": serving.get("load_average_after"),
                "process_id": serving.get("pid"),
                "cpu_model": serving.get("cpu_model"),
                "llama_cpp_system_info": serving.get("system_info"),
                "notes": serving.get("notes") or [],
            }
            if serving
            else None
        ),
        "provenance": {
            "measured": [
                k
                for k in (
                    "artifact_bytes",
                    "peak_memory_bytes",
                    "prompt_tokens_per_s",
                    "generation_tokens_per_s",
                    "perplexity",
                    "kl_divergence",
                )
                if metrics.get(k) is not None or k == "artifact_bytes"
            ],
            "estimated": [
                k
                for k in (
                    "projected_artifact_bytes",
                    "projected_memory_bytes",
                    "projected_prompt_tokens_per_s",
                    "projected_generation_tokens_per_s",
                )
                if projection.get(k.removeprefix("projected_")) is not None
            ],
        },
    }


def search_rows(search: dict[str, Any], *, terminal: bool) -> list[dict[str, Any]]:
    """Every candidate of a search in the order tried, with its verdict: passed,
    failed (measured value against the bar, or why not measured), not tried
    (the search stopped earlier) or pending."""
    tried = {t["format"]: t for t in search.get("trail", [])}
    rows = []
    for number, candidate in enumerate(search.get("candidates", []), start=1):
        fmt = candidate["format"]
        trial = tried.get(fmt)
        if trial is not None:
            verdict = "passed" if trial["passed"] else "failed"
            reason = trial["reason"]
        elif terminal:
            verdict = "not tried"
            reason = (
                "a smaller format already passed"
                if search.get("answer")
                else "the search stopped before it"
            )
        else:
            verdict, reason = "pending", ""
        rows.append(
            {
                "number": number,
                "format": fmt,
                "projected_bytes": candidate.get("projected_bytes"),
                "value": trial.get("value") if trial else None,
                "verdict": verdict,
                "reason": reason,
                "answer": fmt == search.get("answer"),
            }
        )
    return rows
