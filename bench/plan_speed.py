"""Time plan(): one format, and the full matrix (every format on every catalog GPU).

Run ``python bench/plan_speed.py [--model ID] [--repeat N]``. Prints absolute
milliseconds and ratios against a baseline measured in the same process:
``json.dumps`` of one plan result, so numbers stay comparable across machines.
Targets: one format < 5 ms, the full matrix < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
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


def _best_ms(fn: Callable[[], object], repeat: int, *, cold: bool) -> float:
    times = []
    for _ in range(repeat):
        if cold:
            clear_caches()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times) if not cold else statistics.median(times)


def measure(model_id: str = "llama-3.1-70b", repeat: int = 7) -> dict[str, object]:
    """Time the cases; returns the baseline and rows (name, ms, target ms)."""
    spec = get_model(model_id).spec
    gpus = load_gpus()
    formats = [f.id for f in list_formats()]
    one = PlanRequest(model=spec, gpu=gpus[0], formats=["gguf-Q4_K_M"])
    sample = plan(one).results[0].to_dict()

    def baseline() -> None:
        for _ in range(10):
            json.dumps(sample)

    def one_format() -> None:
        plan(one)

    def matrix() -> None:
        for gpu in gpus:
            plan(PlanRequest(model=spec, gpu=gpu, formats=formats))

    base_ms = _best_ms(baseline, repeat * 3, cold=False) / 10
    rows = [
        (
            "plan(), one format, cold caches",
            _best_ms(one_format, repeat, cold=True),
            5,
        ),
        (
            "plan(), one format, warm caches",
            _best_ms(one_format, repeat, cold=False),
            5,
        ),
        (
            f"matrix {len(formats)} formats x {len(gpus)} GPUs, cold",
            _best_ms(matrix, max(3, repeat // 2), cold=True),
            200,
        ),
        (
            f"matrix {len(formats)} formats x {len(gpus)} GPUs, warm",
            _best_ms(matrix, max(3, repeat // 2), cold=False),
            200,
        ),
    ]
    return {
        "model": model_id,
        "baseline_ms": base_ms,
        "formats": len(formats),
        "gpus": len(gpus),
        "rows": [{"case": n, "ms": ms, "target_ms": t} for n, ms, t in rows],
    }


def main() -> None:
    """Run the benchmark and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-70b")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    result = measure(args.model, args.repeat)
    base_ms = float(result["baseline_ms"])  # type: ignore[arg-type]
    print(f"model {args.model}; baseline json.dumps(one result) = {base_ms:.4f} ms")
    print(f"{'case':48} {'ms':>9} {'x baseline':>11} {'target ms':>10}")
    for row in result["rows"]:  # type: ignore[attr-defined]
        name, ms, target = row["case"], row["ms"], row["target_ms"]
        flag = "" if ms < target else "  OVER TARGET"
        print(f"{name:48} {ms:9.2f} {ms / base_ms:11.0f} {target:10}{flag}")


if __name__ == "__main__":
    main()
