"""Serve the sample model with continuous batching at 1, 2, 4 and 8 slots and hold
the measured latency against the batched latency model.

The server loop is llama-server's (tools/server): every step decodes one token
for each running slot and adds waiting prompt tokens up to ``n_batch`` (chunked
prefill) in one ``llama_decode``, with a unified KV cache and one sequence id per
slot; it is driven here through llama.cpp's C API in one process, with a bounded
closed-loop load generator (``slots`` clients, each sending its next request as
soon as the previous one ends, ``requests`` each). No HTTP: the figures are the
engine's, not a web stack's.

The model side is ``planner.engine.latency`` with a device that describes this
machine, calibrated from two single-sequence measurements taken first (one
decode step, one 512-token prefill micro-batch); 2, 4 and 8 slots are then
predictions. Run ``python bench/serving_load.py [--prompt 128 --output 32]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SLOTS = (1, 2, 4, 8)


class Server:
    """One model, one context with ``slots`` sequences, llama-server's step loop."""

    def __init__(self, path: str, *, slots: int, n_ctx: int, threads: int) -> None:
        import llama_cpp as ll

        self.ll = ll
        ll.llama_backend_init()
        mp = ll.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = ll.llama_model_load_from_file(path.encode(), mp)
        vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(vocab))
        cp = ll.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 2048
        cp.n_ubatch = 512
        cp.n_seq_max = slots
        cp.kv_unified = True
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, cp)
        self.mem = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(2048, 0, 1)
        self.n_batch = 2048

    def decode(self, items: list[tuple[int, int, int, bool]]) -> float:
        """Run one step of (token, position, sequence, wants logits); its seconds."""
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if logits else 0
        b.n_tokens = len(items)
        t0 = time.perf_counter()
        rc = self.ll.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        return time.perf_counter() - t0

    def argmax(self, i: int) -> int:
        """Greedy token of output row ``i``."""
        ptr = self.ll.llama_get_logits_ith(self.ctx, i)
        row = np.ctypeslib.as_array(
            ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )
        return int(row.argmax())

    def forget(self, seq: int) -> None:
        """Drop a finished sequence's KV cache."""
        self.ll.llama_memory_seq_rm(self.mem, seq, -1, -1)

    def close(self) -> None:
        """Free the context and model."""
        self.ll.llama_batch_free(self.batch)
        self.ll.llama_free(self.ctx)
        self.ll.llama_model_free(self.model)


def serve(
    server: Server, *, slots: int, prompt: int, output: int, requests: int
) -> dict[str, float]:
    """Closed loop: ``slots`` clients, ``requests`` each; TTFT and TPOT percentiles."""
    rng = np.random.default_rng(slots)
    todo = [requests] * slots
    state: list[dict[str, object] | None] = [None] * slots
    ttfts: list[float] = []
    tpots: list[float] = []

    def start(s: int) -> None:
        todo[s] -= 1
        toks = [int(t) for t in rng.integers(100, server.n_vocab - 100, prompt)]
        state[s] = {"prompt": toks, "fed": 0, "out": 0, "t0": time.perf_counter()}

    for s in range(slots):
        start(s)
    while any(st is not None for st in state):
        items: list[tuple[int, int, int, bool]] = []
        rows: list[tuple[int, int]] = []  # (slot, batch row) that get logits
        for s, st in enumerate(state):
            if st is not None and st["fed"] == prompt:
                rows.append((s, len(items)))
                items.append((int(st["last"]), prompt + int(st["out"]) - 1, s, True))
        for s, st in enumerate(state):
            if st is None or int(st["fed"]) >= prompt:
                continue
            room = server.n_batch - len(items)
            if room <= 0:
                break
            fed = int(st["fed"])
            take = min(room, prompt - fed)
            toks = st["prompt"]
            assert isinstance(toks, list)
            for j in range(fed, fed + take):
                last = j == prompt - 1
                if last:
                    rows.append((s, len(items)))
                items.append((toks[j], j, s, last))
            st["fed"] = fed + take
        server.decode(items)
        now = time.perf_counter()
        for s, row in rows:
            st = state[s]
            assert st is not None
            st["last"] = server.argmax(row)
            st["out"] = int(st["out"]) + 1
            if st["out"] == 1:
                st["t1"] = now
                ttfts.append(now - float(st["t0"]))  # type: ignore[arg-type]
            if st["out"] == output:
                tpots.append((now - float(st["t1"])) / max(1, output - 1))  # type: ignore[arg-type]
                server.forget(s)
                state[s] = None
                if todo[s] > 0:
                    start(s)
    q = statistics.quantiles
    return {
        "slots": slots,
        "ttft_mean_s": statistics.fmean(ttfts),
        "ttft_p95_s": q(ttfts, n=20)[-1] if len(ttfts) > 1 else ttfts[0],
        "tpot_mean_s": statistics.fmean(tpots),
        "tpot_p95_s": q(tpots, n=20)[-1] if len(tpots) > 1 else tpots[0],
        "requests": len(tpots),
    }


def calibrate(server: Server, *, prompt: int) -> tuple[float, float]:
    """(one decode step in s, prefill tokens/s) of a single sequence."""
    rng = np.random.default_rng(0)
    toks = [int(t) for t in rng.integers(100, server.n_vocab - 100, 512)]
    server.decode([(t, j, 0, j == 511) for j, t in enumerate(toks)])  # warm-up
    server.forget(0)
    times = []
    for _ in range(3):
        times.append(server.decode([(t, j, 0, j == 511) for j, t in enumerate(toks)]))
        server.forget(0)
    prefill = min(times)
    server.decode([(toks[0], 0, 0, True)])
    steps = []
    for j in range(1, 33):
        steps.append(server.decode([(toks[j], j, 0, True)]))
    server.forget(0)
    return statistics.median(steps), 512 / prefill


def model_points(
    step_1_s: float, prefill_tps: float, *, prompt: int, output: int
) -> dict[int, dict[str, float]]:
    """The latency model's TTFT and TPOT for a device calibrated on this machine."""
    from planner.engine import get_model, parse_format
    from planner.engine.catalog import gpu_spec_from_dict
    from planner.engine.latency import (
        CPU_LAYER_FLOOR_S,
        CPU_STEP_OVERHEAD_S,
        load_point,
        step_model,
    )
    from planner.engine.speed import CPU_BANDWIDTH_EFFICIENCY, CPU_PREFILL_MFU
    from planner.engine.tensors import parameter_breakdown

    spec = get_model("smollm2-135m-instruct").spec
    fmt = parse_format("gguf-Q4_1")
    flops_per_token = 2 * parameter_breakdown(spec).matmul_per_token
    # Prefill throughput -> peak FLOP/s; the single decode step minus its floor ->
    # bandwidth (the step reads the weights once).
    peak = prefill_tps * flops_per_token / CPU_PREFILL_MFU
    probe = gpu_spec_from_dict(
        {
            "id": "this-machine",
            "kind": "cpu",
            "memory_bytes": 8 << 30,
            "memory_bandwidth_bytes_per_s": 1e11,
            "tflops": {"fp32": peak / 1e12},
        }
    )
    m = step_model(spec, fmt, probe, engine="llama.cpp", gpus=1)
    floor = spec.num_layers * CPU_LAYER_FLOOR_S + CPU_STEP_OVERHEAD_S
    read_s = max(step_1_s - floor, step_1_s * 0.2)
    bandwidth = m.dense_bytes / read_s / CPU_BANDWIDTH_EFFICIENCY
    device = gpu_spec_from_dict(
        {
            "id": "this-machine",
            "kind": "cpu",
            "memory_bytes": 8 << 30,
            "memory_bandwidth_bytes_per_s": bandwidth,
            "tflops": {"fp32": peak / 1e12},
        }
    )
    m = step_model(spec, fmt, device, engine="llama.cpp", gpus=1)
    out = {}
    for n in SLOTS:
        p = load_point(m, concurrency=n, prompt_tokens=prompt, output_tokens=output)
        out[n] = {
            "ttft_mean_s": p.ttft_s,
            "ttft_p95_s": p.ttft_p95_s,
            "tpot_mean_s": p.tpot_s,
            "tpot_p95_s": p.tpot_p95_s,
        }
    return out


def measure(
    *, prompt: int = 128, output: int = 32, requests: int = 4, threads: int = 2
) -> dict[str, object]:
    """Calibrate, serve at each slot count, and compare with the model."""
    from quantjobs.samples import sample_path

    path = str(sample_path("smollm2-135m-instruct-q4_1"))
    server = Server(path, slots=max(SLOTS), n_ctx=max(SLOTS) * 512, threads=threads)
    try:
        step_1, prefill_tps = calibrate(server, prompt=prompt)
        measured = [
            serve(server, slots=n, prompt=prompt, output=output, requests=requests)
            for n in SLOTS
        ]
    finally:
        server.close()
    model = model_points(step_1, prefill_tps, prompt=prompt, output=output)
    rows = []
    for m in measured:
        n = int(m["slots"])
        row: dict[str, float] = {"slots": n}
        for key in ("ttft_mean_s", "tpot_mean_s", "ttft_p95_s", "tpot_p95_s"):
            row[f"measured_{key}"] = m[key]
            row[f"model_{key}"] = model[n][key]
            row[f"error_{key}_pct"] = (model[n][key] - m[key]) / m[key] * 100
        rows.append(row)
    return {
        "calibration": {"decode_step_s": step_1, "prefill_tokens_per_s": prefill_tps},
        "prompt_tokens": prompt,
        "output_tokens": output,
        "rows": rows,
    }


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--output", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = measure(
        prompt=args.prompt,
        output=args.output,
        requests=args.requests,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"calibration: {r['calibration']}")
    print(
        f"{'slots':>5} {'TTFT meas':>10} {'model':>8} {'err%':>6} "
        f"{'TPOT meas ms':>13} {'model':>8} {'err%':>6}"
    )
    for row in r["rows"]:  # type: ignore[attr-defined]
        print(
            f"{row['slots']:>5.0f} {row['measured_ttft_mean_s']:>10.3f} "
            f"{row['model_ttft_mean_s']:>8.3f} {row['error_ttft_mean_s_pct']:>6.0f} "
            f"{row['measured_tpot_mean_s'] * 1e3:>13.2f} "
            f"{row['model_tpot_mean_s'] * 1e3:>8.2f} {row['error_tpot_mean_s_pct']:>6.0f}"
        )


if __name__ == "__main__":
    main()
