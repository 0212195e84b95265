"""Web: POST /api/v1/plans/ under 50 concurrent clients, against bare DRF endpoints.

Run ``python bench/web_load.py [--quick] [--json PATH]``. Starts gunicorn with
``deploy/gunicorn.conf.py`` (gthread, 2 x cores + 1 workers, 4 threads) on
loopback, with ``bench.settings_bench`` (the product's URLconf plus
``/bench/bare/`` and ``/bench/bare-auth/``, see ``bench/urls_bench.py``) and a
fresh SQLite database. 50 aiohttp clients in this process send requests
back-to-back for a fixed time per endpoint; endpoints alternate over the rounds
so that they share the machine's load. Reports requests/s and p50/p99 latency
and their ratio to the bare endpoints (goal: the plans endpoint's p99 within 1.5x
that of bare DRF with token auth), then times the planning engine itself
with ``bench/plan_speed.py`` (one plan < 5 ms, the full matrix < 200 ms).

Beside latency it reports the gunicorn workers' CPU time per request for each
endpoint (user + system, before and after each endpoint's load, warm-up included)
and the plans/bare-auth ratio. At 50 clients on 2 cores p99 is queueing, so it
follows CPU per request; CPU per request does not depend on what else the shared
machine is running, where p99 swings run to run (0.92-2.45 seen at 7.7-8.1 vs
3.4-4.1 ms per request, a CPU ratio of 2.0-2.4). To hold p99 within 1.5x, the plans
endpoint must cost at most ~1.4x the bare token endpoint's CPU.

Results (--quick, 2-core machine shared with other work; issue 14, point 7):
the plans endpoint now validates with shallow field copies, asks the ledger one
precompiled SELECT, and sends the engine's memoised JSON text of the very same
request (planner/engine/memo.py; the ledger is part of the key).

- run 1 (before the JSON text and the faster copy): p99 738 / 711 ms = 1.04,
  CPU 10.29 / 6.87 ms = 1.50, load average 3.6-5.4
- run 2: p99 666 / 627 ms = 1.06, CPU 8.84 / 6.79 ms = 1.30, load average 2.4-3.7
- run 3 (main merged): p99 899 / 544 ms = 1.65 (NOT met), CPU 8.82 / 6.67 ms =
  1.32, load average 4.1-5.2

So the CPU ratio, which predicts p99 on an idle machine, is now within the ~1.4
it needs (1.30-1.32 in runs 2 and 3, from 2.0-2.4), but the p99 goal was met in
two of three runs only: one 4-second round per endpoint on a machine loaded to
4-5 on 2 cores leaves p99 at the mercy of the other work. In these runs the bare
token endpoint itself cost 6.7-6.9 ms of CPU, against 3.4-4.1 ms in the earlier
runs above, so ratios are comparable within one run only. In process (Django's
test client, best of 12 x 60 requests), the plans request went from 6.69 to 3.91
ms of CPU (bare token endpoint 2.2 ms). The memo only helps repeated requests
(as this benchmark's are): a plan never asked before still costs its ~0.7 ms of
planning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Recorder, add_common_args, load_str  # noqa: E402

CLIENTS = 50
P99_GOAL_RATIO = 1.5
PLAN_BODY = {
    "model": "llama-3-70b",
    "gpu": "a100-80gb",
    "formats": ["fp16", "awq-4bit-g128", "gguf-Q4_K_M"],
}
ENDPOINTS = {
    "bare DRF (no auth)": ("/bench/bare/", {}),
    "bare DRF + token auth": ("/bench/bare-auth/", {}),
    "POST /api/v1/plans/": ("/api/v1/plans/", PLAN_BODY),
}


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (gunicorn's workers)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return total
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a worker recycled meanwhile
            continue
        total += times.user + times.system
    try:  # workers that exited (recycled after max_requests) and were reaped
        times = root.cpu_times()
        total += times.children_user + times.children_system
    except psutil.Error:
        pass
    return total


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _load(
    url: str, body: dict[str, Any], token: str, *, clients: int, warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:  # fmt: skip
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payload = json.dumps(body).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    served = 0  # warm-up included: what the server CPU time was spent on
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors, served
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                status = -1
            t1 = time.perf_counter()
            served += 1
            if t0 >= measure_from and t1 <= stop_at:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if not 200 <= status < 300:
                    errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_all": served,
        "rps": len(latencies) / duration_s,
        "p50_ms": 1000 * _percentile(latencies, 0.50),
        "p90_ms": 1000 * _percentile(latencies, 0.90),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "max_ms": 1000 * (latencies[-1] if latencies else float("nan")),
        "errors": errors,
        "statuses": statuses,
        "load": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    """Start the server, load each endpoint in turn, then time plan()."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    args = ap.parse_args(argv)
    rec = Recorder("web_load", quick=args.quick)
    rounds, duration_s = (1, 4.0) if args.quick else (2, 10.0)

    from bench._stack import Stack, free_port

    with Stack(redis=True) as stack:
        token = stack.user_token()
        port = free_port()
        ready_s = stack.start_web(port=port)
        import multiprocessing

        workers = min(2 * multiprocessing.cpu_count() + 1, 9)
        rec.note(
            f"gunicorn deploy/gunicorn.conf.py: {workers} gthread workers x 4 threads on "
            f"127.0.0.1:{port}, up in {ready_s:.1f} s; {args.clients} clients, "
            f"{rounds} round(s) of {duration_s:.0f} s per endpoint"
        )
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/plans/",
            data=json.dumps(PLAN_BODY).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            plan_body = json.loads(response.read())
        rec.note(f"plan response: {len(json.dumps(plan_body))} bytes of JSON")

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
        for r in range(rounds):
            for name, (path, body) in ENDPOINTS.items():
                cpu_before_s = _tree_cpu_s(stack.web_proc.pid)  # type: ignore[union-attr]
                result = asyncio.run(
                    _load(
                        f"http://127.0.0.1:{port}{path}",
                        body,
                        token,
                        clients=args.clients,
                        warmup_s=1.0,
                        duration_s=duration_s,
                    )  # fmt: skip
                )
                # Server CPU per request does not depend on what else the shared
                # machine runs, where latency does: it predicts the p99 ratio on an
                # idle machine (the warm-up second and recycled workers included).
                served = result["requests_all"]
                result["server_cpu_ms_per_request"] = (
                    1000 * (_tree_cpu_s(stack.web_proc.pid) - cpu_before_s) / served  # type: ignore[union-attr]
                    if served
                    else float("nan")
                )
                runs[name].append(result)
                print(
                    f"round {r + 1} {name:24} {result['rps']:7.1f} req/s  p50 "
                    f"{result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                    f"errors {result['errors']}  server CPU "
                    f"{result['server_cpu_ms_per_request']:.2f} ms/req  ({load_str()})",
                    flush=True,
                )

    # Best round per endpoint (highest req/s, lowest latency): the round least
    # disturbed by whatever else the shared machine was doing.
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "rps": max(x["rps"] for x in results),
            "p50_ms": min(x["p50_ms"] for x in results),
            "p99_ms": min(x["p99_ms"] for x in results),
            "p99_ms_worst_round": max(x["p99_ms"] for x in results),
            "errors": sum(x["errors"] for x in results),
            "requests": sum(x["requests"] for x in results),
            "server_cpu_ms_per_request": min(
                x["server_cpu_ms_per_request"] for x in results
            ),
        }
    names = list(ENDPOINTS)
    plan_s = summary[names[2]]
    for base in names[:2]:
        plan_s[f"cpu_ratio_vs {base}"] = (
            plan_s["server_cpu_ms_per_request"]
            / summary[base]["server_cpu_ms_per_request"]
        )
        plan_s[f"rps_ratio_vs {base}"] = plan_s["rps"] / summary[base]["rps"]
        plan_s[f"p99_ratio_vs {base}"] = plan_s["p99_ms"] / summary[base]["p99_ms"]

    from bench.plan_speed import measure

    speed = measure(repeat=3 if args.quick else 7)
    rec.data = {
        "clients": args.clients,
        "rounds": rounds,
        "duration_s": duration_s,
        "gunicorn_workers": workers,
        "gunicorn_threads": 4,
        "plan_body": PLAN_BODY,
        "runs": runs,
        "summary": summary,
        "plan_speed": speed,
    }
    for name, s in summary.items():
        rec.note(
            f"{name}: {s['rps']:.0f} req/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} "
            f"ms, server CPU {s['server_cpu_ms_per_request']:.2f} ms/request"
        )
    # Goal (issue 14, point 7): token auth holds under load, the plans endpoint's p99
    # within 1.5x that of bare DRF with token auth.
    goal_ratio = plan_s["p99_ratio_vs bare DRF + token auth"]
    rec.data["goal_p99_ratio_max"] = P99_GOAL_RATIO
    rec.data["goal_met"] = goal_ratio <= P99_GOAL_RATIO
    rec.note(
        f"goal: plans p99 / bare DRF + token auth p99 = {goal_ratio:.2f} "
        f"(<= {P99_GOAL_RATIO}: {'met' if goal_ratio <= P99_GOAL_RATIO else 'NOT met'})"
    )
    rec.note(
        "server CPU per request, plans / bare DRF + token auth = "
        f"{plan_s['cpu_ratio_vs bare DRF + token auth']:.2f} (independent of the "
        "machine's load; the p99 ratio follows it on an idle machine)"
    )
    for row in speed["rows"]:  # type: ignore[attr-defined]
        rec.note(f"{row['case']}: {row['ms']:.2f} ms (target < {row['target_ms']} ms)")
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
