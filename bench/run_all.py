"""Run every benchmark and write docs/benchmarks.md (``make bench``).

Usage (from the repository root)::

    .venv/bin/python bench/run_all.py            # everything, ~25 min on 2 cores
    .venv/bin/python bench/run_all.py --quick    # shorter runs, ~5-10 min
    .venv/bin/python bench/run_all.py --only web_load,decode_limit
    .venv/bin/python bench/run_all.py --report-only   # re-render from var/bench/results

Each benchmark runs in its own process (``python bench/NAME.py --json ...``),
writes its figures to var/bench/results/NAME.json, and can be run alone the same
way. The report (tables, and PNG plots under docs/bench/) is rendered by
``bench/report/`` (one module per section) from those files. A benchmark that fails is reported as
failed, with the tail of its output; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import BENCH_VAR, RESULTS_DIR, ROOT, load_avg, load_str  # noqa: E402

# (name, extra args for the full run, extra args for --quick, time limit s)
BENCHMARKS: list[tuple[str, list[str], list[str], int]] = [
    ("projection_truth", [], [], 120),
    ("gguf_memory", [], ["--quick"], 1800),
    ("decode_limit", [], ["--quick"], 900),
    ("eval_agreement", [], ["--quick"], 1800),
    ("product_overhead", [], ["--quick"], 1800),
    # After the llama.cpp timings: 50 clients and 20 server threads leave the load
    # average high for a minute.
    ("web_load", [], ["--quick"], 900),
    ("quant_methods", ["--preset", "bench"], ["--preset", "quick"], 3600),
    ("job_measurements", [], ["--quick"], 3600),
    # Builds llama-server once (minutes), then serves at 1/2/4/8 slots.
    ("serving_load", [], ["--quick"], 2400),
]
LOGS_DIR = BENCH_VAR / "logs"
RUN_FILE = RESULTS_DIR / "run_all.json"


def run_one(name: str, extra: list[str], limit_s: int) -> dict[str, object]:
    """Run one benchmark script, echoing and saving its output."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    result_file = RESULTS_DIR / f"{name}.json"
    result_file.unlink(missing_ok=True)  # never report a stale figure as this run's
    log_path = LOGS_DIR / f"{name}.log"
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--json", str(result_file),
           *extra]  # fmt: skip
    print(f"\n=== {name}: {' '.join(cmd[1:])}  ({load_str()})", flush=True)
    started = time.time()
    load_before = load_avg()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        watchdog = threading.Timer(limit_s, kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                log.write(line)
                if "warn" not in line.lower() and "it/s]" not in line:
                    print("   " + line, end="", flush=True)
            rc = proc.wait()
        finally:
            watchdog.cancel()
        timed_out = expired.is_set()
    wall = time.time() - started
    tail = log_path.read_text(errors="replace").splitlines()[-12:]
    status = "ok" if rc == 0 and result_file.is_file() else "failed"
    if timed_out:
        status = f"timed out after {limit_s} s"
    print(f"=== {name}: {status} in {wall:.0f} s ({load_str()})", flush=True)
    return {
        "status": status,
        "rc": rc,
        "wall_s": wall,
        "started": started,
        "load_before": load_before,
        "load_after": load_avg(),
        "log": str(log_path.relative_to(ROOT)),
        "tail": tail if status != "ok" else [],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, then render the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter, noisier runs")
    ap.add_argument("--only", help="comma-separated benchmark names")
    ap.add_argument("--report-only", action="store_true", help="render the report only")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)

    names = [b[0] for b in BENCHMARKS]
    wanted = args.only.split(",") if args.only else names
    unknown = set(wanted) - set(names)
    if unknown:
        ap.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {names}"
        )

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RUN_FILE.read_text()) if RUN_FILE.is_file() else {}
    runs: dict[str, object] = dict(previous.get("runs", {}))
    started = time.time()
    if not args.report_only:
        for name, full, quick, limit_s in BENCHMARKS:
            if name in wanted:
                runs[name] = run_one(name, quick if args.quick else full, limit_s)
                RUN_FILE.write_text(json.dumps({**previous, "runs": runs}, indent=1))
        total = time.time() - started
        meta = {
            "runs": runs,
            "quick": args.quick,
            "total_s": total,
            "finished": time.time(),
        }
        if args.only:
            meta["partial"] = wanted
        RUN_FILE.write_text(json.dumps(meta, indent=1))
        print(f"\nall benchmarks: {total / 60:.1f} min ({load_str()})")

    from bench.report import render

    path = render(args.output)
    print(f"wrote {path.relative_to(ROOT)}")
    failed = [
        n for n, r in runs.items() if isinstance(r, dict) and r.get("status") != "ok"
    ]
    return 1 if failed and not args.report_only else 0


if __name__ == "__main__":
    sys.exit(main())
