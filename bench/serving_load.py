# Kept whole: one benchmark script run as a file; server, load and model are read together.
"""Serve the sample with llama.cpp's own server at 1, 2, 4 and 8 slots under a bounded
load on loopback, and hold TTFT and time per output token against the latency model.

    python bench/serving_load.py [--prompt 128 --output 32 --requests 10] [--json PATH]

The server is ``llama-server``, built from the llama.cpp sources of the pinned
llama-cpp-python (``tests/llama_tools.py``'s ``ensure_llama_tool``, as the
``llama-perplexity`` cross-check is built; ``--server PATH`` takes another build).
One server per slot count: ``-np N`` slots over one unified KV cache, continuous
batching, ``n_batch`` 2048 / ``n_ubatch`` 512 (llama-server's defaults), 2 threads,
no prompt cache. The load generator is closed-loop and bounded: ``N`` clients on
``N`` slots, each sending ``--requests`` requests of random tokens, streamed over
HTTP on 127.0.0.1, greedy with ``ignore_eos``. Prompt and output lengths are drawn
per request, uniform within ``--spread`` (default +-50%) of ``--prompt`` and
``--output`` (vLLM's random dataset, ``--random-range-ratio``), and the clients
start ``1/N`` of a request's duration apart. Equal requests (``--spread 0``) fall
into lockstep on 2 CPU cores (measured 2026-12-02): requests that arrive during a
~0.5 s prompt are batched into the next step, finish together and come back
together, so TTFT grows with the slots while TPOT stays near a pure decode step --
a convoy that real traffic, whose lengths vary, does not keep up. Each client's
first request is ramp-up and is not counted (GuideLLM's warm-up share, vLLM's
ramp-up): the clients start within one request's duration, so their first prompts
arrive during the first prefill and are batched together (measured 2026-12-03 at 8
slots: 5 first prompts in one 2.3 s step, where steady state co-batched 1.17
prompts a step); the model describes steady state. TTFT = first
streamed token minus the send time, at the client; time per output token = (last -
first token) / (output - 1), per request; the server's own ``timings`` are kept
beside them.

The model side is ``planner.engine.latency.load_point`` for a device built from
this worker's fingerprint (``quantjobs.backends.fingerprint``: CPU, threads,
llama.cpp instruction sets, measured read bandwidth) by ``device_from_fingerprint``
-- the device a job on this worker is planned for, not one fitted to these runs.
The error per point is (model - measured) / measured; goal: within 20%. A second
table holds the model calibrated on solo requests: before its load, every server
answers ``SOLO_REQUESTS`` requests one at a time, and the model's prefill and
decode are slowed by the factors those measured against the model's single request
(as the calibration ledger corrects a device from its jobs), pooled over all the
servers of the run. The 2-8 slot rows then test the batching model alone, against
a baseline spread over the whole run rather than one 1-slot run: this VM's speed
drifts by 10-15% between runs (the 1-slot factors were 0.76/0.86 in one run and
0.89/0.94 in the next, 2026-12-03).

``--check`` prints what would run (server command lines, load, model device) and
exits without building or serving: bench/gpu_check.py reuses this module with a
CUDA build (``--gpu-layers``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SLOTS = (1, 2, 4, 8)
SAMPLE = "smollm2-135m-instruct-q4_1"
SAMPLE_MODEL_ID = "smollm2-135m-instruct"
SAMPLE_FORMAT = "gguf-Q4_1"
GOAL_PCT = 20.0
# Request lengths vary by +-50% around the means: real traffic does, and equal
# requests in a closed loop fall into lockstep (see the module's docstring).
LENGTH_SPREAD = 0.5
REQUESTS_PER_CLIENT = 10  # the first of them ramp-up: 9, 18, 36 and 72 measured
MIN_REQUESTS = 8  # per slot count (not with --quick)
SOLO_REQUESTS = 9  # one at a time before each load, the first of them ramp-up
# A closed-loop client's next request waits the whole step just begun (see
# model_points), a Poisson arrival half of one on average (load_point).
CLOSED_LOOP_WAIT_SHARE = 1.0
N_BATCH = 2048  # llama-server's defaults
N_UBATCH = 512
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class LoadSettings:
    """One benchmark run: what each request asks for and how many there are."""

    prompt_tokens: int = 128
    output_tokens: int = 32
    requests_per_client: int = REQUESTS_PER_CLIENT
    min_requests: int = 0  # per slot count: fewer slots, more requests each
    length_spread: float = LENGTH_SPREAD
    threads: int = 2
    gpu_layers: int = 0
    slots: tuple[int, ...] = SLOTS

    def check(self) -> None:
        """Refuse settings that cannot be measured, saying which to change."""
        if not 1 <= self.prompt_tokens <= 4096:
            raise ValueError("--prompt must be between 1 and 4096 tokens.")
        if not 2 <= self.output_tokens <= 1024:
            raise ValueError("--output must be between 2 and 1024 tokens.")
        if not 1 <= self.requests_per_client <= 100:
            raise ValueError("--requests must be between 1 and 100 per client.")
        if not 0 <= self.length_spread <= 0.9:
            raise ValueError("--spread must be between 0 and 0.9.")
        if not 1 <= self.threads <= 256:
            raise ValueError("--threads must be between 1 and 256.")
        if not self.slots or any(not 1 <= n <= 64 for n in self.slots):
            raise ValueError("--slots must list slot counts between 1 and 64.")

    def lengths(self, rng: Any) -> tuple[int, int]:
        """One request's (prompt, output) tokens: uniform within the spread of the
        means (vLLM's random dataset ``--random-range-ratio``), both at least 1/2."""

        def draw(mean: int, low: int) -> int:
            lo = max(low, round(mean * (1 - self.length_spread)))
            hi = max(lo, round(mean * (1 + self.length_spread)))
            return int(rng.integers(lo, hi + 1))

        return draw(self.prompt_tokens, 1), draw(self.output_tokens, 2)

    @property
    def context_per_slot(self) -> int:
        """Tokens of KV cache per slot: the longest request, rounded up to 256."""
        longest = (self.prompt_tokens + self.output_tokens) * (1 + self.length_spread)
        need = math.ceil(longest) + 8
        return -(-need // 256) * 256


def server_command(
    binary: str | Path, model: str | Path, *, slots: int, port: int, s: LoadSettings
) -> list[str]:
    """llama-server's command line for ``slots`` slots on 127.0.0.1:``port``."""
    return [
        str(binary),
        "-m", str(model),
        "--host", "127.0.0.1", "--port", str(port),
        "-np", str(slots), "--kv-unified",
        "-c", str(slots * s.context_per_slot),
        "-b", str(N_BATCH), "-ub", str(N_UBATCH),
        "-t", str(s.threads), "-tb", str(s.threads),
        "-ngl", str(s.gpu_layers),
        "--cache-ram", "0",  # no host prompt cache: every prompt is computed
        "--no-webui",
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running llama-server process (started, waited for, stopped by us)."""

    def __init__(self, cmd: list[str], port: int, log_path: Path) -> None:
        self.port = port
        self.cmd = cmd
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until ``/health`` answers 200 (the model is loaded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}: "
                    + self.log_tail()
                )
            try:
                status, _ = get_json(self.port, "/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama-server not ready after {timeout_s:.0f} s")

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate it (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def get_json(port: int, path: str) -> tuple[int, Any]:
    """GET ``path`` from the server; (status, parsed body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


def n_vocab_of(port: int) -> int:
    """The model's vocabulary size, from ``/v1/models`` (llama-server's meta)."""
    _, body = get_json(port, "/v1/models")
    for entry in (body or {}).get("data", []):
        meta = entry.get("meta") or {}
        if meta.get("n_vocab"):
            return int(meta["n_vocab"])
    raise RuntimeError("llama-server did not report n_vocab")


@dataclass
class RequestTiming:
    """What one client saw of one request, and what the server said it took."""

    ttft_s: float
    tpot_s: float
    tokens: int
    server: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    sent_at: float = 0.0  # time.perf_counter() when the request was sent
    first_at: float = 0.0  # ... when its first token arrived


def completion(port: int, prompt: list[int], output: int) -> RequestTiming:
    """One streamed ``/completion``: greedy, ``output`` tokens, no prompt cache."""
    body = json.dumps(
        {
            "prompt": prompt,
            "n_predict": output,
            "temperature": 0.0,
            "top_k": 1,
            "ignore_eos": True,
            "cache_prompt": False,
            "stream": True,
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"/completion answered {resp.status}: {resp.read()!r}")
        first = last = 0.0
        tokens = 0
        server: dict[str, Any] = {}
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            event = json.loads(line[5:])
            if event.get("content") or event.get("tokens") or event.get("stop"):
                if not first:
                    first = now
                last = now
            if event.get("stop"):
                server = event.get("timings") or {}
                tokens = int(
                    server.get("predicted_n") or event.get("tokens_predicted") or 0
                )
                break
    finally:
        conn.close()
    if not first:
        raise RuntimeError("the server streamed no token")
    n = tokens or output
    return RequestTiming(
        first - t0, (last - first) / max(1, n - 1), n, server, len(prompt), t0, first
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, -(-int(q * len(ordered)) // 100) - 1))
    return float(ordered[rank])


def run_load(
    port: int, *, slots: int, s: LoadSettings, n_vocab: int, stagger_s: float
) -> dict[str, Any]:
    """Closed loop: ``slots`` clients, ``requests_per_client`` each, staggered starts."""
    import numpy as np

    timings: list[RequestTiming] = []
    ramp_up: list[RequestTiming] = []
    errors: list[str] = []
    lock = threading.Lock()
    each = max(s.requests_per_client, -(-s.min_requests // slots))

    def client(i: int) -> None:
        rng = np.random.default_rng(1000 * slots + i)
        time.sleep(i * stagger_s / slots)
        for j in range(each):
            p, o = s.lengths(rng)
            prompt = [int(t) for t in rng.integers(100, n_vocab - 100, p)]
            try:
                t = completion(port, prompt, o)
            except (OSError, RuntimeError, ValueError) as exc:
                with lock:
                    errors.append(str(exc))
                return
            with lock:
                # A client's first request is ramp-up (see the module's docstring).
                (ramp_up if j == 0 and each > 1 else timings).append(t)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(slots)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    if errors or not timings:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[:1]}")
    ttft = [t.ttft_s for t in timings]
    tpot = [t.tpot_s for t in timings]
    server_tpot = [
        float(t.server["predicted_per_token_ms"]) / 1e3
        for t in timings
        if t.server.get("predicted_per_token_ms")
    ]
    return {
        "slots": slots,
        "requests": len(timings),
        "ramp_up_requests": len(ramp_up),
        "prompt_tokens_mean": statistics.fmean(t.prompt_tokens for t in timings),
        "output_tokens_mean": statistics.fmean(t.tokens for t in timings),
        "wall_s": wall,
        "output_tokens_per_s": sum(t.tokens for t in timings) / wall,
        "ttft_mean_s": statistics.fmean(ttft),
        "ttft_p50_s": percentile(ttft, 50),
        "ttft_p95_s": percentile(ttft, 95),
        "tpot_mean_s": statistics.fmean(tpot),
        "tpot_p50_s": percentile(tpot, 50),
        "tpot_p95_s": percentile(tpot, 95),
        "server_tpot_mean_s": statistics.fmean(server_tpot) if server_tpot else None,
    }


def model_device(fingerprint: dict[str, Any]) -> Any:
    """The device a job on this worker is planned for (from its fingerprint)."""
    from planner.engine.device import WorkerFingerprint, device_from_fingerprint

    return device_from_fingerprint(WorkerFingerprint.from_dict(fingerprint))


def model_points(
    device: Any,
    s: LoadSettings,
    *,
    model_id: str = SAMPLE_MODEL_ID,
    fmt: str = SAMPLE_FORMAT,
    scale: tuple[float, float] = (1.0, 1.0),
    lengths: dict[int, tuple[float, float]] | None = None,
) -> dict[int, dict[str, float]]:
    """The latency model's TTFT and time per output token at each slot count.

    Mean figures are ``load_point`` (requests in flight = slots), except that a
    closed-loop client waits a whole step before its prompt runs: it sends its
    next request as its last token arrives, just after the server has begun its
    next step (measured at 8 slots: 279 ms from send to the prompt's start against
    a 287 ms mean step), where ``load_point``'s Poisson arrival waits half of one.
    The p95 figures are those of exactly ``slots`` in flight with a whole step to
    wait for (a closed loop never has more in flight than it has clients).
    ``lengths`` maps a slot count to the mean (prompt, output) tokens its requests
    really had (they are drawn at random), else the settings' means are used.

    ``scale`` = (prompt, decode) slows the step model's prefill and decode down by
    those factors (``solo_scale``): the machine's speed taken from requests measured
    one at a time, as the calibration ledger takes it from jobs, so that the other
    slot counts test what the model says about batching alone.
    """
    from planner.engine import get_model, parse_format
    from planner.engine.latency import (
        load_point,
        step_model,
        time_per_output_token,
        time_to_first_token,
    )

    spec = get_model(model_id).spec
    m = step_model(spec, parse_format(fmt), device, engine="llama.cpp", gpus=1)
    prompt_f, decode_f = scale
    if scale != (1.0, 1.0):
        m = replace(
            m,
            prefill_flops_per_s=m.prefill_flops_per_s / prompt_f,
            decode_flops_per_s=m.decode_flops_per_s / decode_f,
            bandwidth_bytes_per_s=m.bandwidth_bytes_per_s / decode_f,
            floor_s=m.floor_s * decode_f,
        )
    out: dict[int, dict[str, float]] = {}
    for n in s.slots:
        sent = (lengths or {}).get(n, (s.prompt_tokens, s.output_tokens))
        p, o = round(sent[0]), max(1, round(sent[1]))
        point = load_point(m, concurrency=n, prompt_tokens=p, output_tokens=o)
        out[n] = {
            "ttft_mean_s": time_to_first_token(m, n, p, o, CLOSED_LOOP_WAIT_SHARE),
            "tpot_mean_s": point.tpot_s,
            "ttft_p95_s": time_to_first_token(m, n, p, o, 1.0),
            "tpot_p95_s": time_per_output_token(m, n, p, o),
            "output_tokens_per_s": point.output_tokens_per_s,
        }
    return out


SOLO_KEYS = (
    "requests",
    "ttft_mean_s",
    "tpot_mean_s",
    "prompt_tokens_mean",
    "output_tokens_mean",
)


def solo_scale(
    device: Any, s: LoadSettings, solo: dict[str, Any]
) -> tuple[float, float]:
    """(prompt, decode) factors by which a server's solo requests measured slower
    than the model's single request at the same lengths."""
    one = model_points(
        device,
        replace(s, slots=(1,)),
        lengths={1: (solo["prompt_tokens_mean"], solo["output_tokens_mean"])},
    )[1]
    return (
        solo["ttft_mean_s"] / one["ttft_mean_s"],
        solo["tpot_mean_s"] / one["tpot_mean_s"],
    )


def calibrated_points(
    device: Any, s: LoadSettings, measured: list[dict[str, Any]]
) -> tuple[
    dict[int, dict[str, float]], dict[int, tuple[float, float]], tuple[float, float]
]:
    """The model at each slot count calibrated on the solo requests of every
    server, the (prompt, decode) factors each server's solo requests measured, and
    the pooled factors used (their mean weighted by solo requests). Pooled, because
    one server's few solo requests are noisier than the drift they would correct
    (2026-12-03: per-server prompt factors 0.68-0.88 within one run; calibrated
    per server, TTFT at 4 slots was 20% off, pooled 3%). No solo run: no points."""
    scales: dict[int, tuple[float, float]] = {}
    weights: dict[int, int] = {}
    for m in measured:
        if m.get("solo"):
            n = int(m["slots"])
            scales[n] = solo_scale(device, s, m["solo"])
            weights[n] = max(1, int(m["solo"]["requests"]))
    if not scales:
        return {}, {}, (1.0, 1.0)
    total = sum(weights.values())
    pooled = (
        sum(scales[n][0] * weights[n] for n in scales) / total,
        sum(scales[n][1] * weights[n] for n in scales) / total,
    )
    points = {
        int(m["slots"]): model_points(
            device,
            replace(s, slots=(int(m["slots"]),)),
            scale=pooled,
            lengths={
                int(m["slots"]): (m["prompt_tokens_mean"], m["output_tokens_mean"])
            },
        )[int(m["slots"])]
        for m in measured
    }
    return points, scales, pooled


def worst_error(rows: list[dict[str, Any]], *, skip_one: bool = False) -> float:
    """The largest |error| of mean TTFT and TPOT over the rows (in %)."""
    return max(
        max(abs(r["error_ttft_mean_s_pct"]), abs(r["error_tpot_mean_s_pct"]))
        for r in rows
        if not (skip_one and r["slots"] == 1)
    )


def compare(
    measured: list[dict[str, Any]], model: dict[int, dict[str, float]]
) -> list[dict[str, Any]]:
    """Rows of measured vs model with the error of each, in % of the measurement."""
    rows = []
    for m in measured:
        n = int(m["slots"])
        if n not in model:
            continue
        row: dict[str, Any] = {
            "slots": n,
            "requests": m["requests"],
            "prompt_tokens_mean": m.get("prompt_tokens_mean"),
            "output_tokens_mean": m.get("output_tokens_mean"),
        }
        for key in (
            "ttft_mean_s",
            "tpot_mean_s",
            "ttft_p95_s",
            "tpot_p95_s",
            "output_tokens_per_s",
        ):
            row[f"measured_{key}"] = m[key]
            row[f"model_{key}"] = model[n][key]
            row[f"error_{key}_pct"] = (model[n][key] - m[key]) / m[key] * 100
        row["server_tpot_mean_s"] = m.get("server_tpot_mean_s")
        row["load_average"] = m.get("load_average")
        rows.append(row)
    return rows


def serve_all(
    binary: str | Path, model: str | Path, s: LoadSettings, log: Any = print
) -> list[dict[str, Any]]:
    """One fresh server per slot count, a warm-up request, then the bounded load."""
    measured = []
    with tempfile.TemporaryDirectory(prefix="qp-serving-") as tmp:
        for n in s.slots:
            port = free_port()
            cmd = server_command(binary, model, slots=n, port=port, s=s)
            server = Server(cmd, port, Path(tmp) / f"server-{n}.log")
            try:
                server.wait_ready()
                n_vocab = n_vocab_of(port)
                # Warm-up, and one request's duration for the stagger.
                rng = [(7 * i) % (n_vocab - 200) + 100 for i in range(s.prompt_tokens)]
                completion(port, rng, s.output_tokens)
                t0 = time.perf_counter()
                completion(port, rng[::-1], s.output_tokens)
                one = time.perf_counter() - t0
                solo = run_load(
                    port,
                    slots=1,
                    s=replace(s, requests_per_client=SOLO_REQUESTS, min_requests=0),
                    n_vocab=n_vocab,
                    stagger_s=0.0,
                )
                result = run_load(port, slots=n, s=s, n_vocab=n_vocab, stagger_s=one)
                result["solo"] = {k: solo[k] for k in SOLO_KEYS}
            except Exception:
                log(f"llama-server log: {server.log_tail(8)}")
                raise
            finally:
                server.stop()
            result["load_average"] = list(os.getloadavg())
            measured.append(result)
            log(
                f"{n} slots: {result['requests']} requests, TTFT mean "
                f"{result['ttft_mean_s'] * 1e3:.1f} ms (p95 "
                f"{result['ttft_p95_s'] * 1e3:.1f}), TPOT mean "
                f"{result['tpot_mean_s'] * 1e3:.2f} ms (p95 "
                f"{result['tpot_p95_s'] * 1e3:.2f}, server "
                f"{(result['server_tpot_mean_s'] or 0) * 1e3:.2f}), "
                f"{result['output_tokens_per_s']:.1f} tok/s; load avg "
                f"{result['load_average'][0]:.2f}"
            )
    return measured


def print_table(rows: list[dict[str, Any]], log: Any = print) -> None:
    """The comparison, one line per slot count."""
    log(
        f"{'slots':>5} {'TTFT ms':>9} {'model':>8} {'err%':>6} {'p95':>8} {'model':>8} "
        f"{'err%':>6} {'TPOT ms':>8} {'model':>7} {'err%':>6} {'p95':>7} {'model':>7} "
        f"{'err%':>6}"
    )
    for r in rows:
        log(
            f"{r['slots']:>5} {r['measured_ttft_mean_s'] * 1e3:>9.1f} "
            f"{r['model_ttft_mean_s'] * 1e3:>8.1f} {r['error_ttft_mean_s_pct']:>+6.0f} "
            f"{r['measured_ttft_p95_s'] * 1e3:>8.1f} {r['model_ttft_p95_s'] * 1e3:>8.1f} "
            f"{r['error_ttft_p95_s_pct']:>+6.0f} "
            f"{r['measured_tpot_mean_s'] * 1e3:>8.2f} {r['model_tpot_mean_s'] * 1e3:>7.2f} "
            f"{r['error_tpot_mean_s_pct']:>+6.0f} {r['measured_tpot_p95_s'] * 1e3:>7.2f} "
            f"{r['model_tpot_p95_s'] * 1e3:>7.2f} {r['error_tpot_p95_s_pct']:>+6.0f}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (shared with bench/gpu_check.py's serving check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per request")
    ap.add_argument("--output", type=int, default=32, help="output tokens per request")
    ap.add_argument(
        "--requests",
        type=int,
        default=REQUESTS_PER_CLIENT,
        help="requests per client (the first is ramp-up, not counted)",
    )
    ap.add_argument(
        "--spread",
        type=float,
        default=LENGTH_SPREAD,
        help="request lengths vary uniformly by this share around the means "
        "(0: equal requests, which fall into lockstep)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slots", default=",".join(map(str, SLOTS)))
    ap.add_argument("--gpu-layers", type=int, default=0, help="-ngl (0: CPU)")
    ap.add_argument("--server", type=Path, default=None, help="a llama-server binary")
    ap.add_argument("--check", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--quick", action="store_true", help="2 requests per client")
    ap.add_argument("--json", type=Path, default=None, help="result file to write")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> LoadSettings:
    """LoadSettings from the parsed command line (checked)."""
    try:
        slots = tuple(int(x) for x in str(args.slots).split(",") if x.strip())
    except ValueError:
        raise ValueError(
            "--slots must be a comma-separated list of integers."
        ) from None
    s = LoadSettings(
        prompt_tokens=args.prompt,
        output_tokens=args.output,
        requests_per_client=2 if args.quick else args.requests,
        min_requests=0 if args.quick else MIN_REQUESTS,
        length_spread=args.spread,
        threads=args.threads,
        gpu_layers=args.gpu_layers,
        slots=slots,
    )
    s.check()
    return s


def main(argv: Sequence[str] | None = None) -> int:
    """Serve, measure, compare; print the table (and write JSON with --json)."""
    from bench._common import Recorder, load_str

    args = parse_args(argv)
    try:
        s = settings_from(args)
    except ValueError as exc:
        print(f"serving_load: {exc}", file=sys.stderr)
        return 2
    from quantjobs.samples import sample_path

    model = sample_path(SAMPLE)
    if args.check:
        binary = args.server or "llama-server"
        for n in s.slots:
            print(" ".join(server_command(binary, model, slots=n, port=0, s=s)))
        print(f"load: {s}")
        return 0
    rec = Recorder("serving_load", quick=args.quick)
    from quantjobs.backends.fingerprint import fingerprint
    from tests.llama_tools import ensure_llama_tool

    binary = args.server or ensure_llama_tool("llama-server", rec.note)
    fp = fingerprint(s.threads)
    device = model_device(fp)
    rec.note(f"model device: {device.name}; {load_str()}")
    measured = serve_all(binary, model, s)
    lengths = {
        int(m["slots"]): (m["prompt_tokens_mean"], m["output_tokens_mean"])
        for m in measured
    }
    model = model_points(device, s, lengths=lengths)
    rows = compare(measured, model)
    print_table(rows)
    worst = worst_error(rows)
    rec.note(
        f"llama-server vs latency model, mean TTFT and TPOT at {list(s.slots)} "
        f"slots: worst error {worst:.0f}% (goal {GOAL_PCT:.0f}%; {load_str()})"
    )
    calibrated, scales, pooled = calibrated_points(device, s, measured)
    calibrated_rows = compare(measured, calibrated)
    print(
        f"calibrated on every server's solo requests (prompt x{pooled[0]:.2f}, "
        f"decode x{pooled[1]:.2f} the fingerprint's model; per server "
        + ", ".join(f"{n}: x{a:.2f}, x{b:.2f}" for n, (a, b) in scales.items())
        + "):"
    )
    print_table(calibrated_rows)
    if any(n != 1 for n in s.slots) and calibrated_rows:
        rec.note(
            "batching alone (model calibrated on the solo requests), worst error "
            f"at {[n for n in s.slots if n != 1]} slots: "
            f"{worst_error(calibrated_rows, skip_one=True):.0f}%"
        )
    rec.data.update(
        {
            "settings": s.__dict__ | {"slots": list(s.slots)},
            "fingerprint": fp,
            "device": device.name,
            "rows": rows,
            "worst_mean_error_pct": worst,
            "solo_scales": {str(n): list(f) for n, f in scales.items()},
            "pooled_scale": list(pooled),
            "calibrated_rows": calibrated_rows,
        }
    )
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
