"""A device from a worker's fingerprint: its cores, its llama.cpp build, its bandwidth."""

from __future__ import annotations

import pytest

from planner.engine import estimate_speed, get_gpu, get_model, parse_format
from planner.engine.device import (
    WorkerFingerprint,
    device_from_fingerprint,
    fp32_tflops,
    llama_cpp_features,
)

AVX512_BUILD = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    "AVX512 = 1 | AVX512_VNNI = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
)
AVX2_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | F16C = 1 |"


def test_the_builds_instruction_sets_are_read_from_its_system_info() -> None:
    assert llama_cpp_features(AVX512_BUILD) == ("avx2", "avx512")
    assert llama_cpp_features(AVX2_BUILD) == ("avx2",)  # "AVX512 = 0" is off
    assert llama_cpp_features("") == ()


def test_compute_scales_with_cores_and_vector_width() -> None:
    assert fp32_tflops(4, ("avx2",)) == pytest.approx(2 * fp32_tflops(2, ("avx2",)))
    assert fp32_tflops(2, ("avx2", "avx512")) == pytest.approx(
        2 * fp32_tflops(2, ("avx2",))
    )


def test_amd_cpus_before_zen_5_get_avx2_throughput_from_avx512() -> None:
    avx512 = ("avx2", "avx512")
    half = fp32_tflops(2, ("avx2",))
    # Zen 4 splits each 512-bit operation in two; a VM may name only the family.
    assert fp32_tflops(2, avx512, "AMD EPYC") == pytest.approx(half)
    assert fp32_tflops(2, avx512, "AMD EPYC 9654 96-Core Processor") == pytest.approx(
        half
    )
    assert fp32_tflops(2, avx512, "AMD EPYC 9655 96-Core Processor") == pytest.approx(
        2 * half
    )
    assert fp32_tflops(2, avx512, "Intel(R) Xeon(R) Platinum 8480+") == pytest.approx(
        2 * half
    )


def test_a_measured_bandwidth_replaces_the_catalog_profile_and_says_so() -> None:
    measured = device_from_fingerprint(
        WorkerFingerprint(
            cpu_model="AMD EPYC",
            cores_used=2,
            system_info=AVX512_BUILD,
            memory_bandwidth_bytes_per_s=30e9,
        )
    )
    assert measured.kind == "cpu"
    assert measured.memory_bandwidth_bytes_per_s == 30e9
    assert measured.cpu_features == ("avx2", "avx512")
    assert "AMD EPYC" in measured.name and "30.0 GB/s measured" in measured.name

    assumed = device_from_fingerprint(WorkerFingerprint(cpu_model="x", cores_used=2))
    base = get_gpu("cpu-generic-ddr5")
    assert assumed.memory_bandwidth_bytes_per_s == base.memory_bandwidth_bytes_per_s
    assert "assumed" in assumed.name
    assert assumed.cpu_features == base.cpu_features


def test_the_engine_plans_speed_for_the_fingerprinted_device() -> None:
    spec = get_model("smollm2-135m-instruct").spec
    fmt = parse_format("gguf-Q4_K_M")

    def decode(bandwidth: float) -> float:
        device = device_from_fingerprint(
            WorkerFingerprint(
                cpu_model="x",
                cores_used=2,
                system_info=AVX512_BUILD,
                memory_bandwidth_bytes_per_s=bandwidth,
            )
        )
        return estimate_speed(
            spec, fmt, device, engine="llama.cpp", gpus=1, concurrency=1,
            prompt_tokens=0, output_tokens=128,
        ).decode_tokens_per_s  # fmt: skip

    assert decode(40e9) > decode(20e9) > 0


def test_a_fingerprint_round_trips_through_json() -> None:
    fp = WorkerFingerprint.from_dict(
        {"cpu_model": "c", "cores_used": "4", "gpu_name": "", "extra": 1}
    )
    assert fp.cores_used == 4 and fp.gpu_name is None
    assert WorkerFingerprint.from_dict(fp.to_dict()) == fp
