"""Time the full capacity search: every catalog accelerator x 1-8 GPUs x every format
x concurrency, cold caches.

Run ``python bench/capacity_speed.py [--model ID] [--repeat N]``. Prints absolute
milliseconds and the ratio against a baseline measured in the same process: one
``plan()`` of one format on one GPU, cold. Target: the full search under 1 s cold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.engine import (  # noqa: E402
    PlanRequest,
    clear_caches,
    get_model,
    list_formats,
    load_gpus,
    plan,
)
from planner.engine.capacity import (  # noqa: E402
    CapacityRequest,
    Targets,
    Workload,
    capacity_search,
)

TARGET_MS = 1000.0


def _cold_ms(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        clear_caches()
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model_id: str = "llama-3.1-70b", repeat: int = 3) -> dict[str, object]:
    """Median cold time of the full search and of the one-plan baseline."""
    spec = get_model(model_id).spec
    gpus = load_gpus()
    request = CapacityRequest(
        model=spec,
        gpus=gpus,
        workload=Workload(requests_per_s=2, prompt_tokens=1000, output_tokens=300),
        # Every format: no quality filter, so all 65 are searched.
        targets=Targets(max_ttft_s=1.0, min_tokens_per_s=30, max_quality_loss_pct=1e9),
    )
    one = PlanRequest(model=spec, gpu=gpus[0], formats=["gguf-Q4_K_M"])
    base_ms = _cold_ms(lambda: plan(one), repeat * 3)
    report = capacity_search(request)
    search_ms = _cold_ms(lambda: capacity_search(request), repeat)
    return {
        "model": model_id,
        "gpus": len(gpus),
        "formats": len(list_formats()),
        "deployments": report.searched,
        "baseline_ms": base_ms,
        "search_ms": search_ms,
        "target_ms": TARGET_MS,
        "recommendation": report.recommendation.label
        if report.recommendation
        else report.why_none,
    }


def main() -> None:
    """Run the benchmark and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-70b")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    r = measure(args.model, args.repeat)
    base, ms = float(r["baseline_ms"]), float(r["search_ms"])  # type: ignore[arg-type]
    print(
        f"model {r['model']}: {r['gpus']} accelerators x 1-8 GPUs x {r['formats']} "
        f"formats = {r['deployments']} deployments searched"
    )
    print(f"baseline plan(), one format, cold: {base:9.2f} ms")
    flag = "" if ms < TARGET_MS else "  OVER TARGET"
    print(
        f"full capacity search, cold:       {ms:9.2f} ms = {ms / base:.0f}x baseline "
        f"(target {TARGET_MS:.0f} ms){flag}"
    )
    print(f"recommendation: {r['recommendation']}")


if __name__ == "__main__":
    main()
