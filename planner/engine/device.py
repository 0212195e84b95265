"""A device to plan for, built from what a worker announces about itself.

A worker's fingerprint names its CPU, the cores a job uses, the instruction sets
its llama.cpp build was compiled with (``llama_print_system_info()``), its GPUs
and, when it measured it, its memory read bandwidth. :func:`device_from_fingerprint`
turns that into a :class:`GpuSpec` the speed and memory models accept, so that a
measured result can stand beside a projection *for the machine that measured it*.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import GpuSpec, get_gpu

# The CPU profile every fingerprint starts from; its fields are replaced by what
# the worker announced.
BASE_CPU_DEVICE_ID = "cpu-generic-ddr5"
# Peak fp32 FLOP per cycle per core: two FMA units of 8 (AVX2) or 16 (AVX-512)
# lanes, 2 FLOP per FMA. A nominal clock, since /proc/cpuinfo's MHz varies.
FP32_FLOP_PER_CYCLE = {"avx512": 64, "avx2": 32, "": 16}
NOMINAL_CLOCK_HZ = 3.0e9
# AMD's AVX-512 CPUs before Zen 5 (Zen 4: EPYC 9xx4, Ryzen 7000) run each 512-bit
# operation as two 256-bit halves: AVX2's FLOP per cycle. Zen 5 server parts
# (EPYC 9xx5) have full-width units. A virtual machine may show only "AMD EPYC";
# then Zen 4 is assumed (bench/serving_load.py measured a Zen 4 guest that way).
_AMD_FULL_WIDTH_AVX512 = re.compile(r"EPYC\s+9\d\d5|Ryzen.*\b9\d{3}X?\b")

_FEATURE = re.compile(r"\b([A-Z0-9_]+)\s*=\s*1\b")


@dataclass(frozen=True)
class WorkerFingerprint:
    """What a worker says about the hardware it measures on."""

    cpu_model: str
    cores_used: int
    system_info: str = ""  # llama_print_system_info() of its llama.cpp build
    memory_bandwidth_bytes_per_s: float | None = None  # measured, if it did
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerFingerprint:
        """Read the JSON a worker announced (unknown keys are ignored)."""
        bandwidth = data.get("memory_bandwidth_bytes_per_s")
        gpu_memory = data.get("gpu_memory_bytes")
        return cls(
            cpu_model=str(data.get("cpu_model") or "unknown CPU"),
            cores_used=max(1, int(data.get("cores_used") or 1)),
            system_info=str(data.get("system_info") or ""),
            memory_bandwidth_bytes_per_s=float(bandwidth) if bandwidth else None,
            gpu_name=str(data["gpu_name"]) if data.get("gpu_name") else None,
            gpu_memory_bytes=int(gpu_memory) if gpu_memory else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


def llama_cpp_features(system_info: str) -> tuple[str, ...]:
    """Instruction sets a llama.cpp build uses, from ``llama_print_system_info()``.

    Returns the subset the engine models (``avx2``, ``avx512``), lower case.
    """
    found = {name.lower() for name in _FEATURE.findall(system_info)}
    features = []
    if "avx2" in found:
        features.append("avx2")
    if "avx512" in found:
        features.append("avx512")
    return tuple(features)


def fp32_tflops(cores: int, features: tuple[str, ...], cpu_model: str = "") -> float:
    """Peak fp32 TFLOPS of ``cores`` cores with the widest of ``features``."""
    widest = "avx512" if "avx512" in features else "avx2" if "avx2" in features else ""
    if (
        widest == "avx512"
        and "AMD" in cpu_model.upper()
        and not _AMD_FULL_WIDTH_AVX512.search(cpu_model)
    ):
        widest = "avx2"  # double-pumped 512-bit operations
    return cores * FP32_FLOP_PER_CYCLE[widest] * NOMINAL_CLOCK_HZ / 1e12


def device_from_fingerprint(fingerprint: WorkerFingerprint) -> GpuSpec:
    """The CPU device a worker's fingerprint describes, for speed projections.

    Compute scales with the cores a job uses and the build's vector width; the
    bandwidth is the worker's measured figure when it sent one, otherwise the
    catalog profile's (and then the device's name says so).
    """
    base = get_gpu(BASE_CPU_DEVICE_ID)
    features = llama_cpp_features(fingerprint.system_info) or base.cpu_features
    tflops = dict(base.tflops)
    tflops["fp32"] = fp32_tflops(
        fingerprint.cores_used, features, fingerprint.cpu_model
    )
    bandwidth = fingerprint.memory_bandwidth_bytes_per_s
    where = (
        f"{bandwidth / 1e9:.1f} GB/s measured"
        if bandwidth
        else f"{base.memory_bandwidth_bytes_per_s / 1e9:.1f} GB/s assumed"
    )
    return dataclasses.replace(
        base,
        id="worker",
        name=(
            f"{fingerprint.cpu_model}, {fingerprint.cores_used} cores used, "
            f"{'/'.join(features) or 'no AVX2'}, {where}"
        ),
        memory_bandwidth_bytes_per_s=bandwidth or base.memory_bandwidth_bytes_per_s,
        tflops=tflops,
        cpu_features=features,
        prices=(),
        source="worker fingerprint",
    )


def device_key(fingerprint: Mapping[str, Any] | None) -> str:
    """A stable name for the hardware a measurement ran on (CPU, threads, build).

    The calibration ledger files measurements under it, and a plan for a
    worker's device looks its calibrations up under the same name.
    """
    if not fingerprint:
        return ""
    features = "/".join(llama_cpp_features(str(fingerprint.get("system_info") or "")))
    parts = [
        str(fingerprint.get("cpu_model") or "unknown CPU"),
        f"{fingerprint.get('cores_used') or '?'} threads",
        features or "no AVX2",
    ]
    if fingerprint.get("gpu_name"):
        parts.append(str(fingerprint["gpu_name"]))
    return " | ".join(parts)[:300]
