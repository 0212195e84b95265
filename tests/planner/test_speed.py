"""Roofline speed: memory-bound decode, compute-bound prefill, CPU and Apple machines."""

from __future__ import annotations

from planner.engine import GpuSpec, ModelSpec, estimate_speed, parse_format
from planner.engine.speed import DECODE_BANDWIDTH_EFFICIENCY, decode_weight_bytes

FP16 = parse_format("fp16")
Q4KM = parse_format("gguf-Q4_K_M")


def _speed(spec: ModelSpec, gpu: GpuSpec, fmt: str = "fp16", **kw: int | str):
    args: dict[str, int | str] = {
        "engine": "vllm",
        "gpus": 1,
        "concurrency": 1,
        "prompt_tokens": 1024,
        "output_tokens": 256,
    }
    args.update(kw)
    return estimate_speed(spec, parse_format(fmt), gpu, **args)  # type: ignore[arg-type]


def test_single_stream_decode_is_bandwidth_bound(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    s = _speed(llama3_8b, h100)
    assert s.decode_bound == "memory"
    # ~15 GB read per token at 75% of 3.35 TB/s: ~150-170 tokens/s
    ideal = (
        h100.memory_bandwidth_bytes_per_s
        * DECODE_BANDWIDTH_EFFICIENCY["vllm"]
        / (decode_weight_bytes(llama3_8b, FP16, 1))
    )
    assert 0.9 * ideal < s.decode_tokens_per_s <= ideal


def test_fewer_bits_decode_faster(llama3_8b: ModelSpec, h100: GpuSpec) -> None:
    assert (
        _speed(llama3_8b, h100, "gptq-4bit-g128").decode_tokens_per_s
        > _speed(llama3_8b, h100, "fp16").decode_tokens_per_s
    )


def test_batching_raises_total_throughput_until_compute_binds(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    one = _speed(llama3_8b, h100, concurrency=1)
    many = _speed(llama3_8b, h100, concurrency=64)
    huge = _speed(llama3_8b, h100, concurrency=4096, prompt_tokens=16, output_tokens=16)
    assert many.total_decode_tokens_per_s > 10 * one.total_decode_tokens_per_s
    assert many.decode_tokens_per_s < one.decode_tokens_per_s
    assert huge.decode_bound == "compute"


def test_ttft_grows_with_the_prompt(llama3_8b: ModelSpec, h100: GpuSpec) -> None:
    short = _speed(llama3_8b, h100, prompt_tokens=512)
    long = _speed(llama3_8b, h100, prompt_tokens=8192)
    assert long.ttft_s > short.ttft_s > 0


def test_tensor_parallel_speeds_vllm_but_not_llama_cpp_layer_split(
    llama3_70b: ModelSpec, h100: GpuSpec
) -> None:
    assert (
        _speed(llama3_70b, h100, gpus=4).decode_tokens_per_s
        > _speed(llama3_70b, h100, gpus=2).decode_tokens_per_s
    )
    assert (
        _speed(
            llama3_70b, h100, "gguf-Q4_K_M", engine="llama.cpp", gpus=4
        ).decode_tokens_per_s
        == _speed(
            llama3_70b, h100, "gguf-Q4_K_M", engine="llama.cpp", gpus=2
        ).decode_tokens_per_s
    )


def test_moe_decode_reads_only_the_experts_a_batch_touches(mixtral: ModelSpec) -> None:
    one = decode_weight_bytes(mixtral, FP16, 1)
    many = decode_weight_bytes(mixtral, FP16, 64)
    assert one < 0.4 * many
    assert many <= 2 * 46.71e9


def test_cpu_and_apple_are_bandwidth_bound_and_slower(
    llama3_8b: ModelSpec, h100: GpuSpec, apple: GpuSpec, cpu_server: GpuSpec
) -> None:
    gpu = _speed(llama3_8b, h100, "gguf-Q4_K_M", engine="llama.cpp")
    mac = _speed(llama3_8b, apple, "gguf-Q4_K_M", engine="llama.cpp")
    cpu = _speed(llama3_8b, cpu_server, "gguf-Q4_K_M", engine="llama.cpp")
    assert mac.decode_bound == cpu.decode_bound == "memory"
    assert gpu.decode_tokens_per_s > mac.decode_tokens_per_s
    assert gpu.ttft_s < cpu.ttft_s
