"""Measure a GGUF artifact the way a server runs it, in a fresh process.

The job's own process has just dequantized, quantized and scored models: its RSS
says what the *job* needs, not what serving the artifact needs. So each artifact
is loaded again by a new Python process that does only what ``llama-server``
does before its first request (load the weights, create an ``n_ctx`` context, a
warm-up decode) and its peak RSS (``VmHWM`` of that process image) is the
artifact's measured memory.

In the same process, after the memory reading, speed is measured as
``llama-bench`` measures it: a warm-up run, then ``repetitions`` runs of prompt
processing (``pp``: ``prompt_tokens`` random tokens decoded in one batch) and of
generation (``tg``: ``generation_tokens`` single-token decodes), each from an
empty KV cache; tokens/s per run, reported as median with min/max and standard
deviation, with the threads used and the load average before and after.

Each run also records the CPU share it got: the process's CPU seconds over the
run's wall time x threads. llama.cpp's threads meet at a barrier after every
operation, so when another process takes one core the other thread waits and a
decode run slows by far more than the time lost; a share well below 1 says the
run was contended, not that the model is slower (three jobs on a busy 2-core
machine differed by 14% in tg128 while their shares differed likewise). Like
``llama-bench --prio``, the measurement can ask for a real-time scheduling class
(``QUANTPLAN_SERVING_PRIORITY=realtime`` in the worker's environment: SCHED_FIFO
for the measuring process only, never the job; Linux caps real-time tasks at 95%
of each second) so that a worker shared with other work measures what an idle
one would; without the permission it measures as usual and says so.

Each run also records what took CPU time from it: the machine's steal (the
hypervisor running other guests on our vCPUs, ``/proc/stat``) and the run delay
of the process's threads (runnable, but another process of this machine held
the core, ``/proc/<pid>/task/*/schedstat``). On a shared 2-vCPU VM these, and a
host that is slower for minutes at a time without reporting steal, moved tg128
by 10-30% between runs and jobs while pp512 moved less (its few, long matrix
products stall less at llama.cpp's barriers). No measurement inside a job can
remove that, so runs whose range passes ``SPREAD_WARNING_PCT`` of their median
carry a warning, in the notes, the API and the job page: every run is kept and
the median is of all of them.

Run as ``python -m quantjobs.backends.gguf.serving REQUEST.json``; it prints one
JSON object (a :class:`ServingMeasurement`) on stdout. :func:`measure_serving`
starts it and reads it back.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantjobs.backends.base import BackendError, peak_rss_bytes
from quantjobs.backends.gguf.run_clock import (
    RunClock,
    TimedRun,
    load_average,
    raise_priority,
)

__all__ = [
    "DEFAULT_GENERATION_TOKENS",
    "DEFAULT_PROMPT_TOKENS",
    "DEFAULT_REPETITIONS",
    "ServingMeasurement",
    "ServingRequest",
    "SpeedSamples",
    "cpu_model_name",
    "measure_serving",
]

# llama-bench's defaults: -p 512 -n 128 -r 5.
DEFAULT_PROMPT_TOKENS = 512
DEFAULT_GENERATION_TOKENS = 128
DEFAULT_REPETITIONS = 5
MAX_BATCH_TOKENS = 2048  # llama.cpp's default n_batch (n_ubatch 512)
_SEED = 1234
PRIORITY_ENV = "QUANTPLAN_SERVING_PRIORITY"
# A run that got less of its threads' CPU time than this was contended.
CONTENDED_CPU_SHARE = 0.9
# Runs whose range (max - min) passes this share of their median make the median
# a figure a repeat of the job may miss by as much: it is flagged, never hidden.
SPREAD_WARNING_PCT = 10.0


@dataclass(frozen=True)
class ServingRequest:
    """What to load and how to time it."""

    model_path: Path
    context_tokens: int
    threads: int = 2
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    generation_tokens: int = DEFAULT_GENERATION_TOKENS
    repetitions: int = DEFAULT_REPETITIONS

    def check(self) -> None:
        """Refuse settings that cannot be measured, saying which to change."""
        if self.context_tokens < 16:
            raise BackendError("context_tokens must be at least 16.")
        if not 1 <= self.prompt_tokens <= 8192:
            raise BackendError("bench_prompt_tokens must be between 1 and 8192.")
        if not 1 <= self.generation_tokens <= 4096:
            raise BackendError("bench_generation_tokens must be between 1 and 4096.")
        if not 1 <= self.repetitions <= 50:
            raise BackendError("bench_repetitions must be between 1 and 50.")


@dataclass(frozen=True)
class SpeedSamples:
    """Tokens/s of each repetition of one test (pp or tg), with its summary."""

    test: str  # "pp512", "tg128"
    tokens: int
    runs_tokens_per_s: tuple[float, ...]
    # CPU seconds / (wall seconds x threads) of each run; empty when not recorded.
    runs_cpu_share: tuple[float, ...] = ()
    # Share of the machine's CPU time the hypervisor gave to others (/proc/stat
    # steal) during each run; empty when not recorded.
    runs_steal_share: tuple[float, ...] = ()
    # Share of the threads' time spent runnable but waiting for a core that
    # another process of this machine held (schedstat run delay) in each run.
    runs_wait_share: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        """Median tokens/s over the repetitions."""
        return float(statistics.median(self.runs_tokens_per_s))

    @property
    def stdev(self) -> float:
        """Sample standard deviation (0 with one repetition)."""
        runs = self.runs_tokens_per_s
        return float(statistics.stdev(runs)) if len(runs) > 1 else 0.0

    @property
    def spread_pct(self) -> float:
        """(max - min) of the runs as a percentage of their median."""
        median = self.median
        runs = self.runs_tokens_per_s
        return 100.0 * (max(runs) - min(runs)) / median if median > 0 else 0.0

    def spread_warning(self) -> str | None:
        """Why this median is unreliable, or None when the runs agree."""
        spread = self.spread_pct
        if spread <= SPREAD_WARNING_PCT:
            return None
        runs = self.runs_tokens_per_s
        causes = []
        if self.runs_steal_share:
            causes.append(f"steal up to {100 * max(self.runs_steal_share):.1f}%")
        if self.runs_wait_share:
            causes.append(
                f"threads waiting for a core up to {100 * max(self.runs_wait_share):.1f}%"
            )
        if self.runs_cpu_share:
            causes.append(f"CPU share down to {min(self.runs_cpu_share):.2f}")
        measured = f" ({', '.join(causes)})" if causes else ""
        return (
            f"{self.test} is unreliable: its {len(runs)} runs spread "
            f"{spread:.0f}% ({min(runs):.1f}-{max(runs):.1f} tok/s), more than "
            f"{SPREAD_WARNING_PCT:.0f}%{measured}; a repeat may differ by as much"
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the runs (at full precision: ``from_dict`` rebuilds the
        warning from them), median, min, max, stdev, spread and conditions."""
        runs = self.runs_tokens_per_s
        return {
            "test": self.test,
            "tokens": self.tokens,
            "repetitions": len(runs),
            "runs_tokens_per_s": list(runs),
            "median_tokens_per_s": round(self.median, 3),
            "min_tokens_per_s": round(min(runs), 3),
            "max_tokens_per_s": round(max(runs), 3),
            "stdev_tokens_per_s": round(self.stdev, 3),
            "runs_cpu_share": list(self.runs_cpu_share),
            "contended_runs": sum(
                1 for c in self.runs_cpu_share if c < CONTENDED_CPU_SHARE
            ),
            "runs_steal_share": list(self.runs_steal_share),
            "runs_wait_share": list(self.runs_wait_share),
            "spread_pct": round(self.spread_pct, 2),
            "spread_warning": self.spread_warning(),
        }


@dataclass(frozen=True)
class ServingMeasurement:
    """What the fresh serving process measured."""

    pid: int
    peak_memory_bytes: int  # VmHWM after load + context + warm-up decode
    peak_memory_after_bench_bytes: int  # VmHWM at the end (a bench context may grow)
    context_tokens: int
    load_time_s: float
    threads: int
    prompt: SpeedSamples
    generation: SpeedSamples
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float]
    system_info: str  # llama_print_system_info() of the llama.cpp build
    cpu_model: str
    bench_context_tokens: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    priority: str = "normal"  # the scheduling class the runs got

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the speed summaries."""
        out = asdict(self)
        out["prompt"] = self.prompt.summary()
        out["generation"] = self.generation.summary()
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServingMeasurement:
        """Inverse of :meth:`to_dict`."""

        def samples(d: dict[str, Any]) -> SpeedSamples:
            return SpeedSamples(
                test=str(d["test"]),
                tokens=int(d["tokens"]),
                runs_tokens_per_s=tuple(float(x) for x in d["runs_tokens_per_s"]),
                runs_cpu_share=tuple(float(x) for x in d.get("runs_cpu_share", ())),
                runs_steal_share=tuple(float(x) for x in d.get("runs_steal_share", ())),
                runs_wait_share=tuple(float(x) for x in d.get("runs_wait_share", ())),
            )

        def triple(v: Any) -> tuple[float, float, float]:
            a, b, c = (float(x) for x in v)
            return (a, b, c)

        return cls(
            pid=int(data["pid"]),
            peak_memory_bytes=int(data["peak_memory_bytes"]),
            peak_memory_after_bench_bytes=int(data["peak_memory_after_bench_bytes"]),
            context_tokens=int(data["context_tokens"]),
            load_time_s=float(data["load_time_s"]),
            threads=int(data["threads"]),
            prompt=samples(data["prompt"]),
            generation=samples(data["generation"]),
            load_average_before=triple(data["load_average_before"]),
            load_average_after=triple(data["load_average_after"]),
            system_info=str(data["system_info"]),
            cpu_model=str(data["cpu_model"]),
            bench_context_tokens=int(data.get("bench_context_tokens", 0)),
            notes=tuple(str(n) for n in data.get("notes", ())),
            priority=str(data.get("priority", "normal")),
        )


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _random_tokens(n: int, n_vocab: int, seed: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, n_vocab, size=n)]


def _time_prompt(session: Any, tokens: list[int], threads: int) -> TimedRun:
    """One pp run from an empty cache: ``tokens`` decoded in one batch."""
    session.clear()
    start = RunClock.now()
    session.decode(tokens, keep_logits=False)
    return TimedRun.between(start, RunClock.now(), threads)


def _time_generation(
    session: Any, first: int, tokens: list[int], threads: int
) -> TimedRun:
    """One tg run from an empty cache: one-token decodes."""
    session.clear()
    start = RunClock.now()
    token = first
    for pos, nxt in enumerate(tokens):
        session.decode([token], start_pos=pos, keep_logits=False)
        token = nxt  # llama-bench feeds random tokens: no sampling in the loop
    return TimedRun.between(start, RunClock.now(), threads)


def _samples(test: str, tokens: int, runs: list[TimedRun]) -> SpeedSamples:
    return SpeedSamples(
        test,
        tokens,
        tuple(tokens / r.seconds if r.seconds > 0 else 0.0 for r in runs),
        tuple(r.cpu_share for r in runs),
        tuple(r.steal_share for r in runs),
        tuple(r.wait_share for r in runs),
    )


def _open(request: ServingRequest, n_ctx: int) -> Any:
    from quantjobs.backends.gguf.session import LlamaSession

    return LlamaSession(
        request.model_path,
        n_ctx=n_ctx,
        n_batch=min(n_ctx, MAX_BATCH_TOKENS),
        n_threads=request.threads,
    )


def run_serving(request: ServingRequest) -> ServingMeasurement:
    """Load, warm up, read the peak RSS, then time pp and tg (this process)."""
    import llama_cpp

    request.check()
    notes: list[str] = []
    priority, note = raise_priority(os.environ.get(PRIORITY_ENV, "normal"))
    if note:
        notes.append(note)
    load_before = load_average()
    n_ctx = int(request.context_tokens)
    t0 = time.perf_counter()
    session = _open(request, n_ctx)
    load_time_s = time.perf_counter() - t0
    try:
        n_vocab = session.n_vocab
        bos = session.bos if session.add_bos else None
        # Warm-up as a server's first request: a prompt of up to one full
        # batch, then one generated token.
        warm = _random_tokens(min(request.prompt_tokens, n_ctx - 1), n_vocab, _SEED)
        if bos is not None:
            warm[0] = bos
        session.clear()
        session.decode(warm)
        session.decode([warm[-1]], start_pos=len(warm), keep_logits=False)
        peak_serving = peak_rss_bytes()

        # The speed tests need a context that holds the longest of them.
        bench_ctx = max(request.prompt_tokens, request.generation_tokens + 1)
        if bench_ctx > n_ctx:
            notes.append(
                f"speed measured in a {bench_ctx}-token context (the job's context "
                f"of {n_ctx} tokens cannot hold pp{request.prompt_tokens})"
            )
            session.close()
            session = _open(request, bench_ctx)
        else:
            bench_ctx = n_ctx

        prompt = _random_tokens(request.prompt_tokens, n_vocab, _SEED + 1)
        if bos is not None:
            prompt[0] = bos
        gen = _random_tokens(request.generation_tokens, n_vocab, _SEED + 2)
        first = bos if bos is not None else gen[0]
        # llama-bench's warm-up: one pp run and a one-token tg run.
        threads = max(1, request.threads)
        _time_prompt(session, prompt, threads)
        _time_generation(session, first, gen[:1], threads)
        pp_runs: list[TimedRun] = []
        tg_runs: list[TimedRun] = []
        for _ in range(request.repetitions):
            pp_runs.append(_time_prompt(session, prompt, threads))
            tg_runs.append(_time_generation(session, first, gen, threads))
    finally:
        session.close()
    prompt_samples = _samples(f"pp{request.prompt_tokens}", len(prompt), pp_runs)
    generation_samples = _samples(f"tg{request.generation_tokens}", len(gen), tg_runs)
    notes.extend(
        warning
        for warning in (
            prompt_samples.spread_warning(),
            generation_samples.spread_warning(),
        )
        if warning
    )
    system_info = llama_cpp.llama_print_system_info()
    if isinstance(system_info, bytes):
        system_info = system_info.decode(errors="replace")
    return ServingMeasurement(
        pid=os.getpid(),
        peak_memory_bytes=peak_serving,
        peak_memory_after_bench_bytes=peak_rss_bytes(),
        context_tokens=n_ctx,
        load_time_s=load_time_s,
        threads=request.threads,
        prompt=prompt_samples,
        generation=generation_samples,
        load_average_before=load_before,
        load_average_after=load_average(),
        system_info=str(system_info).strip(),
        cpu_model=cpu_model_name(),
        bench_context_tokens=bench_ctx,
        notes=tuple(notes),
        priority=priority,
    )


# --------------------------------------------------------------------------
# In the job's process
# --------------------------------------------------------------------------


def measure_serving(
    request: ServingRequest, *, timeout_s: float = 1800.0
) -> ServingMeasurement:
    """Run :func:`run_serving` in a new process and return what it measured.

    The new process stays in the job's process group, so a cancel or a time
    limit stops it with the job, and it dies with its parent.
    """
    request.check()
    payload = json.dumps(
        {
            "model_path": str(request.model_path),
            "context_tokens": request.context_tokens,
            "threads": request.threads,
            "prompt_tokens": request.prompt_tokens,
            "generation_tokens": request.generation_tokens,
            "repetitions": request.repetitions,
        }
    )
    env = {**os.environ, "QUANTPLAN_PARENT_PID": str(os.getpid())}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quantjobs.backends.gguf.serving", payload],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parents[3]),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"Measuring {request.model_path.name} as a server would load it took "
            f"more than {timeout_s:.0f} s; use fewer bench_repetitions or fewer "
            "bench tokens."
        ) from None
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    if done.returncode != 0 or not isinstance(data, dict) or "error" in data:
        reason = (
            data.get("error")
            if isinstance(data, dict) and data.get("error")
            else done.stderr.strip().splitlines()[-1:]
        )
        if isinstance(reason, list):
            reason = reason[0] if reason else f"exit code {done.returncode}"
        raise BackendError(
            f"The serving measurement of {request.model_path.name} failed: {reason}"
        )
    return ServingMeasurement.from_dict(data)


def main(argv: list[str]) -> int:
    """Entry point of the fresh process: one JSON line on stdout."""
    from quantjobs.backends.child import die_with_parent

    die_with_parent()
    # llama.cpp and Python may print to stdout: the answer goes on the real one.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        raw = json.loads(argv[1])
        request = ServingRequest(
            model_path=Path(raw["model_path"]),
            context_tokens=int(raw["context_tokens"]),
            threads=int(raw.get("threads", 2)),
            prompt_tokens=int(raw.get("prompt_tokens", DEFAULT_PROMPT_TOKENS)),
            generation_tokens=int(
                raw.get("generation_tokens", DEFAULT_GENERATION_TOKENS)
            ),
            repetitions=int(raw.get("repetitions", DEFAULT_REPETITIONS)),
        )
        result = run_serving(request)
    except BackendError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        out.flush()
        return 1
    out.write(json.dumps(result.to_dict()) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
