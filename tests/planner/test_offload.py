"""llama.cpp partial offload: llama.cpp's fitting rules, flags, and the capacity search."""

from __future__ import annotations

from planner.engine import get_gpu, get_model, parse_format
from planner.engine.capacity import CapacityRequest, Workload, capacity_search
from planner.engine.latency import step_model
from planner.engine.offload import FIT_MARGIN_BYTES, offload_plan


def _plan(model: str, fmt: str, gpu: str = "rtx-4090"):  # type: ignore[no-untyped-def]
    return offload_plan(
        get_model(model).spec,
        parse_format(fmt),
        get_gpu(gpu),
        context_tokens=4096,
        sequences=1,
    )


def test_a_moe_model_keeps_dense_weights_on_the_gpu_and_some_experts_in_ram() -> None:
    plan = _plan("mixtral-8x7b", "gguf-Q4_K_M")
    assert plan is not None
    assert plan.flags.startswith("-ngl 999 --n-cpu-moe ")
    assert 0 < plan.cpu_moe_layers < 32
    assert plan.host_dense_bytes == 0 and plan.host_expert_bytes > 0
    assert plan.gpu_bytes <= get_gpu("rtx-4090").memory_bytes - FIT_MARGIN_BYTES


def test_a_dense_model_offloads_whole_layers_from_the_front() -> None:
    plan = _plan("llama-3-70b", "gguf-Q4_K_M")
    assert plan is not None and plan.flags.startswith("-ngl ")
    assert 0 < plan.gpu_layers < 80
    assert plan.host_dense_bytes > 15e9
    assert plan.kv_host_share == (80 - plan.gpu_layers) / 80


def test_weights_in_ram_slow_decoding_down() -> None:
    spec, fmt, gpu = (
        get_model("llama-3-70b").spec,
        parse_format("gguf-Q4_K_M"),
        get_gpu("rtx-4090"),
    )
    plan = _plan("llama-3-70b", "gguf-Q4_K_M")
    offloaded = step_model(spec, fmt, gpu, engine="llama.cpp", gpus=1, offload=plan)
    resident = step_model(spec, fmt, gpu, engine="llama.cpp", gpus=1)
    assert offloaded.step(1, 1000, 0, 0) > 3 * resident.step(1, 1000, 0, 0)


def test_the_search_offers_one_gpu_with_experts_in_ram() -> None:
    report = capacity_search(
        CapacityRequest(
            model=get_model("mixtral-8x7b").spec,
            gpus=[get_gpu("rtx-4090")],
            formats=["gguf-Q4_K_M"],
            workload=Workload(
                requests_per_s=0.01, prompt_tokens=500, output_tokens=200
            ),
        )
    )
    one = [c for c in report.candidates if c.gpus == 1]
    assert one and "--n-cpu-moe" in one[0].llama_cpp_flags
    assert "GB in RAM" in one[0].label
    assert report.recommendation is not None and report.recommendation.gpus == 1
