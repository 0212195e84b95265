#!/usr/bin/env python3
"""Projection error of the size engine against real published artifact sizes.

For every row of ``planner/engine/data/published_sizes.json`` this computes
``artifact_bytes(model_spec_from_config(config, model_id=id), parse_format(fmt))``
and compares it with the published byte count. It is a report, not a test: it
always exits 0.

Rows are grouped by ``bytes_kind``:

* ``file``          exact file size in bytes (sum of shards for sharded checkpoints)
* ``file_rounded``  a size published rounded to 2 decimals in GB (+-5 MB)
* ``tensor_data``   tensor bytes only (llama.cpp's "model size"); compared with the
                    engine's GGUF tensor-data bytes when the engine exposes them

The headline median / max |error| are over ``file`` + ``file_rounded`` rows.

Files built differently from today's llama.cpp / convert_hf_to_gguf are listed
in ``KNOWN_DIFFERENT`` (the same list ``tests/planner/test_catalog.py`` skips);
the summary is given with and without them.

Usage (from the repository root):
``python bench/projection_truth.py [--markdown] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "planner" / "engine" / "data"

# Kept in step with KNOWN_DIFFERENT in tests/planner/test_catalog.py.
KNOWN_DIFFERENT = {
    "qwen2.5-1.5b-instruct-q8_0.gguf": "untied output.weight added by Qwen's converter",
    "qwen2.5-3b-instruct-q5_k_m.gguf": "untied output.weight added by Qwen's converter",
    "Phi-3.1-mini-4k-instruct-Q5_K_M.gguf": "older llama.cpp attn_qkv rule",
}


def _engine():
    """Import the engine's public API, tolerating a package without __init__ exports."""
    try:
        from planner.engine import artifact_bytes, model_spec_from_config, parse_format
    except ImportError:
        from planner.engine.formats import parse_format
        from planner.engine.spec import model_spec_from_config
        from planner.engine.weights import artifact_bytes
    try:
        from planner.engine.gguf_rules import gguf_tensor_data_bytes
    except ImportError:
        gguf_tensor_data_bytes = None
    return artifact_bytes, model_spec_from_config, parse_format, gguf_tensor_data_bytes


def _configs() -> dict[str, dict]:
    try:
        from planner.engine.catalog import load_models

        return {m.id: dict(m.config) for m in load_models()}
    except Exception:  # catalog not importable yet: read the JSON directly
        models = json.loads((DATA / "models.json").read_text(encoding="utf-8"))
        return {m["id"]: m["config"] for m in models}


def _fmt_bytes(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def collect() -> list[dict]:
    """One dict per published row: published vs projected bytes and the error."""
    artifact_bytes, model_spec_from_config, parse_format, tensor_bytes = _engine()
    configs = _configs()
    rows = json.loads((DATA / "published_sizes.json").read_text(encoding="utf-8"))

    results = []
    for r in rows:
        kind = r.get("bytes_kind", "file")
        out = {
            "model": r["model_id"],
            "format": r["format"],
            "kind": kind,
            "published": r["bytes"],
            "file": r.get("file", ""),
            "precision": r.get("bytes_precision", 0),
            "projected": None,
            "err": None,
            "error": "",
        }
        try:
            cfg = configs[r["model_id"]]
            spec = model_spec_from_config(cfg, model_id=r["model_id"])
            fmt = parse_format(r["format"])
            if kind == "tensor_data":
                if tensor_bytes is None or not fmt.id.startswith("gguf-"):
                    raise RuntimeError(
                        "engine exposes no tensor-data bytes for this format"
                    )
                out["projected"] = tensor_bytes(spec, fmt.gguf_type or fmt.id[5:])
            else:
                out["projected"] = artifact_bytes(spec, fmt)
            out["err"] = 100.0 * (out["projected"] - r["bytes"]) / r["bytes"]
        except Exception as exc:  # a report: record and carry on
            out["error"] = f"{type(exc).__name__}: {exc}"[:120]
        results.append(out)

    for out in results:
        out["known_different"] = KNOWN_DIFFERENT.get(out["file"], "")
    return results


def summarise(
    results: list[dict], kinds: tuple[str, ...], *, exclude_known: bool
) -> dict:
    """n, median and max |error| (and the worst row) over rows of ``kinds``."""
    sel = [
        x
        for x in results
        if x["kind"] in kinds
        and x["err"] is not None
        and not (exclude_known and x["known_different"])
    ]
    failed = sum(1 for x in results if x["kind"] in kinds and x["err"] is None)
    if not sel:
        return {"n": 0, "failed": failed}
    worst = max(sel, key=lambda x: abs(x["err"]))
    errs = [abs(x["err"]) for x in sel]
    return {
        "n": len(sel),
        "failed": failed,
        "median_abs_err_pct": statistics.median(errs),
        "max_abs_err_pct": max(errs),
        "worst": f"{worst['model']} {worst['format']}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    results = collect()

    groups = [
        ("file", "Exact published file sizes"),
        ("file_rounded", "Sizes published as GB with 2 decimals (+-5 MB)"),
        (
            "tensor_data",
            "llama.cpp tensor-data sizes (bits/weight x params), Llama-3.1-8B",
        ),
    ]
    md = args.markdown
    for kind, title in groups:
        sel = [x for x in results if x["kind"] == kind]
        if not sel:
            continue
        print(f"\n## {title}\n" if md else f"\n{title}")
        if md:
            print("| model | format | published bytes | projected bytes | error % |")
            print("|---|---|---:|---:|---:|")
        else:
            print(
                f"{'model':24} {'format':16} {'published':>17} {'projected':>17} {'error %':>8}"
            )
        for x in sel:
            err = f"{x['err']:+.3f}" if x["err"] is not None else "n/a"
            extra = f"  ({x['error']})" if x["error"] else ""
            if md:
                print(
                    f"| {x['model']} | {x['format']} | {_fmt_bytes(x['published'])} | "
                    f"{_fmt_bytes(x['projected'])} | {err}{extra} |"
                )
            else:
                print(
                    f"{x['model']:24} {x['format']:16} {_fmt_bytes(x['published']):>17} "
                    f"{_fmt_bytes(x['projected']):>17} {err:>8}{extra}"
                )

    def summary(label: str, kinds: tuple[str, ...]) -> None:
        errs = [
            abs(x["err"])
            for x in results
            if x["kind"] in kinds and x["err"] is not None
        ]
        failed = sum(1 for x in results if x["kind"] in kinds and x["err"] is None)
        if not errs:
            print(f"\n{label}: no comparable rows ({failed} failed)")
            return
        worst = max(
            (x for x in results if x["kind"] in kinds and x["err"] is not None),
            key=lambda x: abs(x["err"]),
        )
        line = (
            f"{label}: n={len(errs)}, median |error| = {statistics.median(errs):.3f}%, "
            f"max |error| = {max(errs):.3f}% ({worst['model']} {worst['format']})"
            + (f", {failed} row(s) not projected" if failed else "")
        )
        print(("\n**" + line + "**") if md else "\n" + line)

    summary("Files (exact + rounded)", ("file", "file_rounded"))
    summary("Exact files only", ("file",))
    summary("Tensor data (llama.cpp table)", ("tensor_data",))
    clean = summarise(results, ("file", "file_rounded"), exclude_known=True)
    if clean["n"]:
        line = (
            f"Files without the {len(KNOWN_DIFFERENT)} known-different ones: "
            f"n={clean['n']}, median |error| = {clean['median_abs_err_pct']:.3f}%, "
            f"max |error| = {clean['max_abs_err_pct']:.3f}% ({clean['worst']})"
        )
        print(("\n**" + line + "**") if md else "\n" + line)
    if args.json:
        from bench._common import Recorder

        rec = Recorder("projection_truth", quick=False)
        rec.data = {
            "rows": results,
            "known_different": KNOWN_DIFFERENT,
            "summary": {
                "files": summarise(
                    results, ("file", "file_rounded"), exclude_known=False
                ),
                "files_without_known": clean,
                "exact_files": summarise(results, ("file",), exclude_known=False),
                "tensor_data": summarise(
                    results, ("tensor_data",), exclude_known=False
                ),
            },
        }
        rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
