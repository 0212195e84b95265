"""The limit: decode tokens/s of the sample Q4_K_M against this machine's bandwidth.

Run ``python bench/decode_limit.py [--quick] [--json PATH]``. A decode step of a
dense model reads every weight once, so tokens/s cannot exceed
``memory bandwidth / bytes of tensor data``. Bandwidth is measured in this run
with numpy on arrays far larger than the last-level cache (best of several
read kernels on 1 and 2 threads; plain copy is reported too), interleaved with
the decode measurements so that both see the same load. Goal: >= 0.7 of the
limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    Recorder,
    add_common_args,
    ensure_gguf_types,
    gguf_tensor_bytes,
    load_str,
    median,
)

ARRAY_BYTES = 512 << 20  # 16x the 32 MiB L3 of this machine


def _best_s(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _threaded(parts: list[Any], fn: Callable[[Any], Any]) -> Callable[[], None]:
    def run() -> None:
        threads = [threading.Thread(target=fn, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


def measure_bandwidth(*, quick: bool = False) -> dict[str, Any]:
    """Read and copy bandwidth of this machine, bytes/s (numpy, best of N).

    ``np.maximum.reduce`` over float32 is a vectorised read with almost no
    arithmetic; numpy releases the GIL inside it, so two Python threads each
    reading half the array use both cores, as llama.cpp's two threads do.
    """
    import numpy as np

    n = ARRAY_BYTES // 4
    a = np.ones(n, dtype=np.float32)
    b = np.empty_like(a)
    b[:] = 0  # fault the pages in before timing
    halves = [a[: n // 2], a[n // 2 :]]
    repeat = 3 if quick else 5
    kernels = {
        "max-reduce 1 thread": (lambda: np.maximum.reduce(a), a.nbytes),
        "max-reduce 2 threads": (_threaded(halves, np.maximum.reduce), a.nbytes),
        "sum 2 threads": (_threaded(halves, np.sum), a.nbytes),
        "dot (BLAS)": (lambda: np.dot(a, a), a.nbytes),
    }
    read = {}
    for name, (fn, nbytes) in kernels.items():
        fn()
        read[name] = nbytes / _best_s(fn, repeat)
    copy = 2 * a.nbytes / _best_s(lambda: np.copyto(b, a), repeat)
    best_kernel = max(read, key=lambda k: read[k])
    return {
        "read_bytes_per_s": read[best_kernel],
        "read_kernel": best_kernel,
        "read_by_kernel": read,
        "copy_bytes_per_s": copy,
        "array_bytes": a.nbytes,
        "load": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    """Interleave bandwidth and decode measurements; report the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    args = ap.parse_args(argv)
    rec = Recorder("decode_limit", quick=args.quick)

    from bench.gguf_memory import probe

    path = ensure_gguf_types(["Q4_K_M"], rec.note)["Q4_K_M"]
    tensor_bytes = gguf_tensor_bytes(path)
    rounds = 1 if args.quick else 4
    samples = []
    for i in range(rounds):
        bw = measure_bandwidth(quick=args.quick)
        m = probe(path, 512, gen=64 if args.quick else 128, runs=3)
        # Diagnostic: one thread, which a busy 2-core machine cannot starve of
        # its partner at every barrier (llama.cpp threads spin-wait for each other).
        m1 = probe(path, 512, gen=64, runs=2, threads=1)
        limit = bw["read_bytes_per_s"] / tensor_bytes
        samples.append(
            {
                "bandwidth": bw,
                "decode_tokens_per_s": m["decode_tokens_per_s"],
                "decode_runs": m["decode_runs"],
                "decode_1_thread_tokens_per_s": m1["decode_tokens_per_s"],
                "limit_tokens_per_s": limit,
                "ratio": m["decode_tokens_per_s"] / limit,
                "load": list(os.getloadavg()),
            }
        )
        print(
            f"round {i + 1}: read {bw['read_bytes_per_s'] / 1e9:5.1f} GB/s "
            f"({bw['read_kernel']}), copy {bw['copy_bytes_per_s'] / 1e9:5.1f} GB/s, "
            f"limit {limit:6.1f} tok/s, decode {m['decode_tokens_per_s']:6.1f} tok/s "
            f"(1 thread {m1['decode_tokens_per_s']:.1f}), "
            f"ratio {m['decode_tokens_per_s'] / limit:.2f}  ({load_str()})",
            flush=True,
        )
    best_bw = max(s["bandwidth"]["read_bytes_per_s"] for s in samples)
    best_decode = max(s["decode_tokens_per_s"] for s in samples)
    best_1 = max(s["decode_1_thread_tokens_per_s"] for s in samples)
    rec.data = {
        "model": path.name,
        "tensor_bytes": tensor_bytes,
        "file_bytes": path.stat().st_size,
        "samples": samples,
        "best_read_bytes_per_s": best_bw,
        "best_decode_tokens_per_s": best_decode,
        "ratio_of_bests": best_decode * tensor_bytes / best_bw,
        "ratio_median": median(s["ratio"] for s in samples),
        "best_decode_1_thread_tokens_per_s": best_1,
    }
    rec.note(
        f"Q4_K_M decode {best_decode:.1f} tok/s (best) vs limit "
        f"{best_bw / tensor_bytes:.1f} tok/s = {rec.data['ratio_of_bests']:.2f} "
        f"(median of paired rounds {rec.data['ratio_median']:.2f}; goal >= 0.70)"
    )
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
