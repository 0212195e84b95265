"""What a worker measures on: CPU, cores used, llama.cpp build, memory bandwidth.

Run as ``python -m quantjobs.backends.fingerprint THREADS``; prints one JSON
object (``planner.engine.device.WorkerFingerprint`` fields). A separate process,
because the worker's main process never imports llama_cpp, and the bandwidth
reading must not run in a process that then holds a 256 MiB array.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from quantjobs.backends.gguf.serving import cpu_model_name

BANDWIDTH_ARRAY_BYTES = 256 << 20  # well above any L3 cache


def llama_system_info() -> str:
    """``llama_print_system_info()`` of the installed llama.cpp build, or ''."""
    try:
        import llama_cpp
    except ImportError:
        return ""
    llama_cpp.llama_backend_init()
    info = llama_cpp.llama_print_system_info()
    return (
        info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    ).strip()


def read_bandwidth_bytes_per_s(threads: int, repeat: int = 3) -> float:
    """Memory read bandwidth with ``threads`` threads (numpy sums; best of ``repeat``).

    numpy releases the GIL in its loops, so each thread reads its share of the
    array on its own core, as llama.cpp's threads read their share of a matrix.
    """
    import numpy as np

    a = np.ones(BANDWIDTH_ARRAY_BYTES // 4, dtype=np.float32)
    parts = np.array_split(a, max(1, threads))

    def once() -> float:
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - t0

    once()
    best = min(once() for _ in range(repeat))
    return float(a.nbytes / best) if best > 0 else 0.0


def fingerprint(threads: int, *, measure_bandwidth: bool = True) -> dict[str, Any]:
    """This machine's fingerprint, as a JSON-ready dict."""
    threads = max(1, threads)
    out: dict[str, Any] = {
        "cpu_model": cpu_model_name(),
        "cores_used": threads,
        "cpu_count": os.cpu_count() or 1,
        "system_info": llama_system_info(),
        "memory_bandwidth_bytes_per_s": None,
    }
    if measure_bandwidth:
        out["memory_bandwidth_bytes_per_s"] = read_bandwidth_bytes_per_s(threads)
        out["load_average"] = list(os.getloadavg())
    return out


def main(argv: list[str]) -> int:
    """Print this machine's fingerprint for ``argv[1]`` threads."""
    threads = int(argv[1]) if len(argv) > 1 else (os.cpu_count() or 1)
    print(json.dumps(fingerprint(threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
