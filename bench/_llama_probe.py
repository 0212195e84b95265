"""One measurement in a fresh process: load a GGUF with llama.cpp, prefill, decode.

Run by the benchmarks as ``python bench/_llama_probe.py --model X.gguf --ctx 2048``
(or without ``--model`` for the bare baseline: the same imports and
``llama_backend_init`` but no model). Prints one JSON object on stdout: peak RSS
(``VmHWM``), RSS at each step, prefill and decode tokens/s, and the buffer
sizes llama.cpp logged. The model is loaded the way Quantplan's evaluator loads
it (``LlamaSession``: the C API, mmap on, CPU only).
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402

_BUFFER = re.compile(
    r"(\S+)\s+(model|KV|compute|output)\s+buffer size\s*=\s*([0-9.]+)\s*MiB"
)


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _peak() -> int:
    # VmHWM belongs to this process image; ru_maxrss would carry over the
    # parent's peak across fork + exec on Linux.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def main() -> int:
    """Measure and print one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512, help="prompt tokens (capped)")
    ap.add_argument("--gen", type=int, default=64, help="tokens to decode per run")
    ap.add_argument("--runs", type=int, default=3, help="decode runs (best is kept)")
    args = ap.parse_args()

    import llama_cpp

    from quantjobs.backends.llama_eval import LlamaLogs, LlamaSession
    from quantjobs.evaltext import default_eval_text

    llama_cpp.llama_backend_init()
    out: dict[str, object] = {"rss_imported": _rss()}
    if args.model is None:
        out["peak_rss"] = _peak()
        print(json.dumps(out))
        return 0

    logs = LlamaLogs.install()
    info: list[str] = []
    logs.on_info = info.append
    t0 = time.perf_counter()
    session = LlamaSession(
        args.model,
        n_ctx=args.ctx,
        n_batch=min(args.ctx, 2048),  # llama.cpp's default n_batch; n_ubatch 512
        n_threads=args.threads,
    )
    out["load_s"] = time.perf_counter() - t0
    out["rss_loaded"] = _rss()
    logs.on_info = None
    buffers: dict[str, float] = {}
    for line in "".join(info).splitlines():
        match = _BUFFER.search(line)
        if match:
            key = f"{match.group(2)}:{match.group(1)}"
            buffers[key] = buffers.get(key, 0.0) + float(match.group(3))
    out["buffers_mib"] = buffers

    tokens = session.tokenize(default_eval_text())
    n_prompt = max(1, min(args.prompt, args.ctx - args.gen - 1, len(tokens)))
    prompt = tokens[:n_prompt]
    best_decode = 0.0
    decode_runs = []
    prefill_runs = []
    for _ in range(max(1, args.runs)):
        session.clear()
        t0 = time.perf_counter()
        logits = session.decode(prompt)
        prefill_runs.append(n_prompt / (time.perf_counter() - t0))
        pos = n_prompt
        t1 = time.perf_counter()
        for _ in range(args.gen):
            token = int(np.argmax(logits[-1]))  # greedy, EOS ignored: fixed length
            logits = session.decode([token], start_pos=pos)
            pos += 1
        tps = args.gen / (time.perf_counter() - t1)
        decode_runs.append(tps)
        best_decode = max(best_decode, tps)
    out["rss_after_decode"] = _rss()
    out["prompt_tokens"] = n_prompt
    out["prefill_tokens_per_s"] = max(prefill_runs)
    out["decode_tokens_per_s"] = best_decode
    out["decode_runs"] = decode_runs
    out["peak_rss"] = _peak()
    session.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
