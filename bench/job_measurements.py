"""Do jobs measure what they say? Repeatability of speed, and memory vs projection.

Run ``python bench/job_measurements.py [--quick] [--repeat-only] [--json PATH]``
(``--repeat-only``: step 1 alone). Every figure
comes from the job child itself (``python -m quantjobs.backends.child``, the
process a worker runs for a job), on the bundled sample:

1. *Repeatability*: three identical GGUF jobs (Q4_K_M, same options); each
   measures speed as llama-bench does (warm-up, pp512 and tg128, 5 runs,
   median) in a fresh serving process. Printed: max/min of the three medians
   for pp and tg (goal: <= 1.10 on an idle worker), with the load average.
2. *Memory in the job*: one job with every GGUF type at each of two contexts;
   the serving process's peak RSS vs the engine's projection for this worker's
   device (built from its fingerprint). Goal: within 5%.
3. *Speed vs projection*: the same jobs' pp/tg medians vs the roofline for the
   fingerprinted device, as a ratio.
4. *Calibrated*: the three identical jobs are what the calibration ledger would
   hold for this device (measured / roofline per job); the ledger's refit
   (``planner.engine.calibration.fit_efficiency``, ``calibrated``: the median
   ratio once there are 3 runs) gives the calibrated projection of a fresh job
   -- the Q4_K_M job of step 2 -- held against what that job measured (goal:
   within 15% on generation tok/s). The other types get the same family factor
   (the ledger fits one per device, engine and format family) and are shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    GGUF_BENCH_TYPES,
    MIB,
    ROOT,
    SAMPLE_ID,
    SAMPLE_MODEL_ID,
    THREADS,
    Recorder,
    add_common_args,
    load_str,
    pct,
)
from quantjobs.backends.gguf.serving import PRIORITY_ENV  # noqa: E402


def run_job(
    formats: list[str],
    options: dict[str, Any],
    work: Path,
    cache: Path,
    priority: str = "",
) -> list[dict[str, Any]]:
    """Run the job child once; return its result events."""
    work.mkdir(parents=True, exist_ok=True)
    request = {
        "job_id": "bench",
        "method": "gguf",
        "formats": formats,
        "source": {"kind": "sample", "ref": SAMPLE_ID},
        "work_dir": str(work),
        "cache_dir": str(cache),
        "eval_text_path": None,
        "options": options,
        "threads": THREADS,
    }
    path = work / "request.json"
    path.write_text(json.dumps(request))
    env = dict(os.environ)
    if priority:
        env[PRIORITY_ENV] = priority
    done = subprocess.run(
        [sys.executable, "-m", "quantjobs.backends.child", str(path)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=3600,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    errors = [e for e in events if e.get("event") == "error"]
    if errors or done.returncode != 0:
        raise RuntimeError(f"job failed: {errors or done.stderr[-800:]}")
    return [e for e in events if e.get("event") == "result"]


def projected(fmt: str, ctx: int, serving: dict[str, Any], fp: dict[str, Any]) -> Any:
    """(memory bytes, pp tok/s, tg tok/s) the engine projects for this worker."""
    from planner.engine import estimate_memory, estimate_speed, get_model, parse_format
    from planner.engine.device import WorkerFingerprint, device_from_fingerprint

    spec = get_model(SAMPLE_MODEL_ID).spec
    parsed = parse_format(fmt)
    device = device_from_fingerprint(
        WorkerFingerprint.from_dict(
            {
                **fp,
                "cores_used": serving["threads"],
                "system_info": serving["system_info"],
            }
        )
    )
    memory = estimate_memory(
        spec, parsed, device, engine="llama.cpp", gpus=1, context_tokens=ctx,
        sequences=1,
    ).total_bytes_per_gpu  # fmt: skip
    pp = estimate_speed(
        spec, parsed, device, engine="llama.cpp", gpus=1, concurrency=1,
        prompt_tokens=serving["prompt"]["tokens"], output_tokens=0,
    ).prefill_tokens_per_s  # fmt: skip
    tg = estimate_speed(
        spec, parsed, device, engine="llama.cpp", gpus=1, concurrency=1,
        prompt_tokens=0, output_tokens=serving["generation"]["tokens"],
    ).decode_tokens_per_s  # fmt: skip
    return memory, pp, tg


def calibration_check(
    rec: Recorder, repeat: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ledger's refit from the three jobs, held against the fresh jobs."""
    from planner.engine.calibration import calibrated, fit_efficiency

    out: dict[str, Any] = {}
    for key in ("tg", "pp"):
        eff = fit_efficiency(
            [r[f"{key}_median"] / r[f"roofline_{key}"] for r in repeat]
        )
        if eff is None:
            continue
        fresh = []
        for row in rows:
            value, label = calibrated(row[f"projected_{key}"], eff)
            fresh.append(
                {
                    "format": row["format"],
                    "ctx": row["ctx"],
                    "measured": row[f"{key}_median"],
                    "calibrated": value,
                    "err_pct": pct(row[f"{key}_median"], value),
                }
            )
        out[key] = {"factor": eff.factor, "runs": eff.runs, "label": label,
                    "fresh": fresh}  # fmt: skip
        same = [f for f in fresh if f["format"] == "gguf-Q4_K_M"]
        shown = ", ".join(
            f"ctx {f['ctx']}: measured {f['measured']:.1f}, calibrated "
            f"{f['calibrated']:.1f} tok/s ({f['err_pct']:+.1f}%)"
            for f in same
        )
        worst = max((abs(f["err_pct"]) for f in fresh), default=0.0)
        rec.note(
            f"{key}: {label}, factor {eff.factor:.3f} (roofline x factor); fresh "
            f"Q4_K_M jobs {shown or 'not run'}; every type: worst {worst:.1f}% "
            f"(goal for tg 15%; {load_str()})"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Three identical jobs, then every type at two contexts; print the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--types", default=",".join(GGUF_BENCH_TYPES[1:]))
    ap.add_argument(
        "--realtime",
        action="store_true",
        help=f"{PRIORITY_ENV}=realtime for the jobs' serving measurement",
    )
    ap.add_argument(
        "--repeat-only",
        action="store_true",
        help="only the three identical jobs (step 1): their max/min ratios",
    )
    args = ap.parse_args(argv)
    # --repeat-only writes its own result file: a full run's stays whole.
    name = "job_measurements_repeat" if args.repeat_only else "job_measurements"
    rec = Recorder(name, quick=args.quick)

    from quantjobs.backends.fingerprint import fingerprint

    priority = "realtime" if args.realtime else ""
    fp = fingerprint(THREADS)
    rec.note(
        f"worker fingerprint: {fp['cpu_model']}, {fp['cores_used']} threads, "
        f"read bandwidth {fp['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s"
    )
    bench = (
        {
            "bench_prompt_tokens": 128,
            "bench_generation_tokens": 32,
            "bench_repetitions": 3,
        }
        if args.quick
        else {}  # llama-bench's defaults: pp512, tg128, 5 repetitions
    )
    base = {"max_chunks": 2, "context_tokens": 512, **bench}
    cache = Path(tempfile.mkdtemp(prefix="qp-bench-cache-"))

    # 1. three identical jobs
    repeat: list[dict[str, Any]] = []
    for i in range(3):
        with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
            (result,) = run_job(["gguf-Q4_K_M"], base, Path(tmp), cache, priority)
        serving = result["metrics"]["serving"]
        row = {
            "run": i + 1,
            "pp_median": serving["prompt"]["median_tokens_per_s"],
            "tg_median": serving["generation"]["median_tokens_per_s"],
            "pp": serving["prompt"],
            "tg": serving["generation"],
            "load_before": serving["load_average_before"],
            "load_after": serving["load_average_after"],
            "peak_memory_bytes": result["metrics"]["peak_memory_bytes"],
            "job_peak_memory_bytes": result["metrics"]["job_peak_memory_bytes"],
            "priority": serving.get("priority", "normal"),
            "tg_cpu_share": serving["generation"].get("runs_cpu_share", []),
            "pp_cpu_share": serving["prompt"].get("runs_cpu_share", []),
            "tg_steal_share": serving["generation"].get("runs_steal_share", []),
            "tg_wait_share": serving["generation"].get("runs_wait_share", []),
            "tg_spread_pct": serving["generation"].get("spread_pct"),
            "pp_spread_pct": serving["prompt"].get("spread_pct"),
        }
        _, row["roofline_pp"], row["roofline_tg"] = projected(
            "gguf-Q4_K_M", base["context_tokens"], serving, fp
        )
        repeat.append(row)
        print(
            f"job {i + 1}: {serving['prompt']['test']} {row['pp_median']:.1f} tok/s "
            f"(min {serving['prompt']['min_tokens_per_s']:.1f}, max "
            f"{serving['prompt']['max_tokens_per_s']:.1f}), "
            f"{serving['generation']['test']} {row['tg_median']:.1f} tok/s "
            f"(min {serving['generation']['min_tokens_per_s']:.1f}, max "
            f"{serving['generation']['max_tokens_per_s']:.1f}); serving peak "
            f"{row['peak_memory_bytes'] / MIB:.1f} MiB, job peak "
            f"{row['job_peak_memory_bytes'] / MIB:.1f} MiB; CPU share of the tg "
            f"runs {', '.join(f'{c:.2f}' for c in row['tg_cpu_share'])}, steal "
            f"{', '.join(f'{100 * c:.1f}%' for c in row['tg_steal_share'])}, "
            f"waiting for a core "
            f"{', '.join(f'{100 * c:.1f}%' for c in row['tg_wait_share'])}; "
            f"spread pp {row['pp_spread_pct']}%, tg {row['tg_spread_pct']}%; "
            f"{row['priority']} priority ({load_str()})",
            flush=True,
        )
    pp_ratio = max(r["pp_median"] for r in repeat) / min(r["pp_median"] for r in repeat)
    tg_ratio = max(r["tg_median"] for r in repeat) / min(r["tg_median"] for r in repeat)
    rec.note(
        f"three identical jobs: max/min of the medians pp {pp_ratio:.3f}, "
        f"tg {tg_ratio:.3f} (goal <= 1.10 on an idle worker; {load_str()})"
    )
    rec.data["repeat"] = {"runs": repeat, "pp_ratio": pp_ratio, "tg_ratio": tg_ratio}
    if args.repeat_only:
        rec.write(args.json)
        return 0

    # 2-3. every type at two contexts, in the job itself
    types = [t for t in args.types.split(",") if t]
    if args.quick:
        # Q4_K_M stays: it is the fresh job the calibration is held against.
        types = [t for t in types if t in ("Q8_0", "Q4_K_M", "Q2_K")] or types[:3]
    rows: list[dict[str, Any]] = []
    for ctx in (512, 2048):
        with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
            results = run_job(
                [f"gguf-{t}" for t in types],
                {**base, "context_tokens": ctx},
                Path(tmp),
                cache,
                priority,
            )
        for result in results:
            serving = result["metrics"]["serving"]
            memory, pp, tg = projected(result["format"], ctx, serving, fp)
            peak = int(result["metrics"]["peak_memory_bytes"])
            row = {
                "format": result["format"],
                "ctx": ctx,
                "peak_memory_bytes": peak,
                "projected_memory_bytes": memory,
                "memory_err_pct": pct(peak, memory),
                "job_peak_memory_bytes": result["metrics"]["job_peak_memory_bytes"],
                "pp_median": serving["prompt"]["median_tokens_per_s"],
                "projected_pp": pp,
                "tg_median": serving["generation"]["median_tokens_per_s"],
                "projected_tg": tg,
                "tg_ratio": serving["generation"]["median_tokens_per_s"] / tg,
                "pp_ratio": serving["prompt"]["median_tokens_per_s"] / pp,
            }
            rows.append(row)
            print(
                f"{row['format']:12} ctx {ctx:5}: serving peak {peak / MIB:7.1f} MiB, "
                f"projected {memory / MIB:7.1f} MiB ({row['memory_err_pct']:+5.1f}%); "
                f"job peak {row['job_peak_memory_bytes'] / MIB:7.1f} MiB; "
                f"tg {row['tg_median']:6.1f} vs {tg:6.1f} projected "
                f"(x{row['tg_ratio']:.2f}), pp {row['pp_median']:6.1f} vs {pp:6.1f} "
                f"(x{row['pp_ratio']:.2f})",
                flush=True,
            )
    worst = max(abs(r["memory_err_pct"]) for r in rows)
    rec.note(
        f"memory, serving process vs projection: worst {worst:.1f}% over "
        f"{len(rows)} (type, context) pairs (goal 5%)"
    )
    rec.data["memory"] = rows
    rec.data["calibration"] = calibration_check(rec, repeat, rows)
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
