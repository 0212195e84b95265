"""Shared helpers of the benchmarks: paths, load average, JSON results, GGUF cache.

Every benchmark prints a ratio against a baseline measured in the same run, and
the load average beside it: this machine is shared, so absolute seconds move
from run to run while ratios mostly do not.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_VAR = ROOT / "var" / "bench"
RESULTS_DIR = BENCH_VAR / "results"
SAMPLE_ID = "smollm2-135m-instruct-q4_1"
SAMPLE_MODEL_ID = "smollm2-135m-instruct"
# The GGUF types of the sample that the size / memory / speed benchmarks measure.
GGUF_BENCH_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
THREADS = 2
MIB = 1 << 20


def load_avg() -> tuple[float, float, float]:
    """The 1, 5 and 15-minute load averages."""
    return os.getloadavg()


def load_str() -> str:
    """Load average formatted for printing beside a result."""
    one, five, fifteen = load_avg()
    return f"load avg {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_bytes = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_bytes = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem_bytes,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class Recorder:
    """Collects one benchmark's figures and writes them as JSON for the report."""

    def __init__(self, name: str, *, quick: bool) -> None:
        self.name = name
        self.quick = quick
        self.started = time.time()
        self.load_before = load_avg()
        self.data: dict[str, Any] = {}
        self.notes: list[str] = []

    def note(self, line: str) -> None:
        """A remark printed now and kept for the report."""
        print(line, flush=True)
        self.notes.append(line)

    def write(self, path: Path | None) -> Path:
        """Write the result file (default var/bench/results/NAME.json)."""
        target = path or RESULTS_DIR / f"{self.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "name": self.name,
            "quick": self.quick,
            "started": self.started,
            "wall_s": time.time() - self.started,
            "load_before": self.load_before,
            "load_after": load_avg(),
            "machine": machine(),
            "notes": self.notes,
            "data": self.data,
        }
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(body, indent=1, default=str))
        os.replace(tmp, target)
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        print(f"[{self.name}] wrote {shown} ({load_str()})")
        return target


def add_common_args(parser: Any) -> None:
    """--quick and --json, shared by every benchmark."""
    parser.add_argument("--quick", action="store_true", help="a shorter, noisier run")
    parser.add_argument("--json", type=Path, default=None, help="result file to write")


def median(values: Iterable[float]) -> float:
    """Median of a non-empty iterable."""
    return float(statistics.median(list(values)))


def pct(measured: float, projected: float) -> float:
    """Error of ``projected`` relative to ``measured``, in percent."""
    return 100.0 * (projected - measured) / measured


# --------------------------------------------------------------------------
# The GGUF types of the sample, produced once with the product's GGUF backend
# --------------------------------------------------------------------------


def gguf_cache_dir() -> Path:
    """Cache folder keyed by the sample's content and the llama-cpp-python version."""
    import importlib.metadata

    from quantjobs.samples import sample_sha256

    version = importlib.metadata.version("llama-cpp-python")
    key = f"{sample_sha256(SAMPLE_ID)[:16]}-llama-cpp-python-{version}"
    return BENCH_VAR / "gguf" / key


def ensure_gguf_types(
    types: Sequence[str], log: Callable[[str], None] = print
) -> dict[str, Path]:
    """Paths of the sample in each GGUF type, quantized with GgufBackend on first use.

    The sample ships as Q4_1; the backend dequantizes it to an F16 base (that base
    is the ``F16`` entry) and quantizes every other type from it, as a job would.
    """
    from quantjobs.backends import load_backend
    from quantjobs.backends.base import QuantizeRequest
    from quantjobs.samples import sample_path

    cache = gguf_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    paths = {t: cache / f"SmolLM2-135M-Instruct-{t}.gguf" for t in types}
    missing = [t for t in types if not paths[t].is_file()]
    if not missing:
        return paths
    backend = load_backend("gguf")
    f16 = cache / "SmolLM2-135M-Instruct-F16.gguf"
    work = cache / f".work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        if not f16.is_file():
            # A Q8_0 job from the Q4_1 sample dequantizes it to F16 first.
            t0 = time.perf_counter()
            job = work / "first"
            job.mkdir(parents=True)
            result = backend.quantize(
                QuantizeRequest(
                    source_path=sample_path(SAMPLE_ID),
                    source_kind="gguf",
                    format="gguf-Q8_0",
                    work_dir=job,
                    threads=THREADS,
                ),
                lambda fraction, stage: None,
                lambda line: None,
            )
            os.replace(result.reference_path, f16)
            q8 = cache / "SmolLM2-135M-Instruct-Q8_0.gguf"
            os.replace(result.artifact_path, q8)
            log(f"gguf cache: F16 base and Q8_0 in {time.perf_counter() - t0:.1f} s")
        for t in missing:
            if paths[t].is_file():
                continue
            t0 = time.perf_counter()
            job = work / t
            job.mkdir(parents=True)
            result = backend.quantize(
                QuantizeRequest(
                    source_path=f16,
                    source_kind="gguf",
                    format=f"gguf-{t}",
                    work_dir=job,
                    threads=THREADS,
                ),
                lambda fraction, stage: None,
                lambda line: None,
            )
            os.replace(result.artifact_path, paths[t])
            log(f"gguf cache: {t} in {time.perf_counter() - t0:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return paths


def gguf_tensor_bytes(path: Path) -> int:
    """Bytes of tensor data in a GGUF file (what one decode step reads at most)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return int(sum(int(t.n_bytes) for t in reader.tensors))
