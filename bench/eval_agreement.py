"""Evaluation speed and agreement: Quantplan's perplexity/KLD pass vs llama.cpp's own.

Run ``python bench/eval_agreement.py [--quick] [--json PATH]``. On the sample's
F16 and Q4_K_M files, the default evaluation text and a 512-token context:

* perplexity: ``quantjobs.backends.llama_eval.score_tokens`` vs llama.cpp's
  ``llama-perplexity`` (built by ``ensure_llama_perplexity``, cached under
  ~/.cache/quantplan) on the same file, text, context and chunks;
* KL divergence: ``evaluate_gguf`` (Q4_K_M against its F16 reference, the pass
  every job runs) vs ``llama-perplexity --kl-divergence-base`` on F16 followed
  by ``--kl-divergence`` on Q4_K_M: perplexities, mean KLD and top-1 agreement.

Each side runs in its own fresh process, alternately, best time of the rounds.
Goals: the same numbers within 0.5%, Quantplan's time <= 1.1x llama.cpp's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
    THREADS,
    Recorder,
    add_common_args,
    ensure_gguf_types,
    load_str,
)

N_CTX = 512
_FLOAT = r"([0-9.]+(?:e[-+]?\d+)?)"
_PATTERNS = {
    "ppl": re.compile(r"Final estimate: PPL = " + _FLOAT),
    "ppl_q": re.compile(r"Mean PPL\(Q\)\s*:\s*" + _FLOAT),
    "ppl_base": re.compile(r"Mean PPL\(base\)\s*:\s*" + _FLOAT),
    "kld": re.compile(r"Mean\s+KLD:\s*" + _FLOAT),
    "same_top_pct": re.compile(r"Same top p:\s*" + _FLOAT),
}


def _parse(output: str) -> dict[str, float]:
    found = {}
    for key, pattern in _PATTERNS.items():
        match = pattern.search(output)
        if match:
            found[key] = float(match.group(1))
    return found


def run_llama_perplexity(
    model: Path, text_file: Path, *, chunks: int | None, extra: list[str]
) -> tuple[float, dict[str, float]]:
    """(wall seconds, parsed figures) of one llama-perplexity process."""
    from tests.llama_tools import ensure_llama_perplexity

    binary = ensure_llama_perplexity()
    # Same flags as llama_perplexity_reference: one sequence per batch.
    cmd = [str(binary), "-m", str(model), "-f", str(text_file), "-c", str(N_CTX),
           "-b", str(N_CTX), "-t", str(THREADS), "-ngl", "0", *extra]  # fmt: skip
    if chunks:
        cmd += ["--chunks", str(chunks)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-5:])
        raise RuntimeError(f"llama-perplexity failed ({done.returncode}): {tail}")
    return wall, _parse(output)


def run_child(
    mode: str, *paths: Path, chunks: int | None
) -> tuple[float, dict[str, Any]]:
    """(wall seconds, result) of Quantplan's pass in a fresh Python process."""
    cmd = [sys.executable, str(Path(__file__)), "--child", mode,
           "--chunks", str(chunks or 0), *map(str, paths)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, cwd=str(ROOT), check=False
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, result


def child(mode: str, paths: list[Path], chunks: int | None) -> int:
    """Quantplan's pass, timed from after the imports (printed as JSON)."""
    import quantjobs.backends.llama_eval as llama_eval
    from quantjobs.backends.base import EvaluateRequest
    from quantjobs.backends.llama_eval import LlamaSession, evaluate_gguf, score_tokens
    from quantjobs.evaltext import default_eval_text

    # Time the numpy scoring the scorer runs after each decode (log-softmax, NLL,
    # KL; spread over the job's threads): a wall-clock wrapper around the
    # module's own function, the scoring itself is unchanged.
    softmax_s = [0.0]
    original = llama_eval._by_rows

    def timed_by_rows(*args: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args)
        finally:
            softmax_s[0] += time.perf_counter() - t

    llama_eval._by_rows = timed_by_rows  # type: ignore[assignment]
    text = default_eval_text()
    t0 = time.perf_counter()
    if mode == "ppl":
        with LlamaSession(paths[0], n_ctx=N_CTX, n_threads=THREADS) as session:
            tokens = session.tokenize(text)
            score = score_tokens(session, tokens, n_ctx=N_CTX, max_chunks=chunks)
        out: dict[str, Any] = {"ppl": score.perplexity, "positions": score.count}
    else:
        result = evaluate_gguf(
            EvaluateRequest(
                model_path=paths[0],
                model_kind="gguf",
                reference_path=paths[1],
                reference_kind="gguf",
                text=text,
                context_tokens=N_CTX,
                max_chunks=chunks,
                generation_tokens=1,  # the quality pass only
                threads=THREADS,
            ),
            lambda fraction, stage: None,
            lambda line: None,
        )
        out = {
            "ppl_q": result.perplexity,
            "ppl_base": result.base_perplexity,
            "kld": result.kl_divergence,
            "same_top_pct": 100 * result.top1_agreement,
            "positions": result.tokens_evaluated,
        }
    out["pass_s"] = time.perf_counter() - t0
    out["log_softmax_s"] = softmax_s[0]
    print(json.dumps(out))
    return 0


def _err(ours: float, theirs: float) -> float:
    return 100.0 * (ours - theirs) / theirs


def main(argv: list[str] | None = None) -> int:
    """Alternate the two implementations and compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--child", choices=["ppl", "kld"], help=argparse.SUPPRESS)
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.paths, args.chunks or None)

    rec = Recorder("eval_agreement", quick=args.quick)
    from quantjobs.evaltext import default_eval_text
    from tests.llama_tools import ensure_llama_perplexity

    try:
        binary = ensure_llama_perplexity(rec.note, timeout_s=1800)
    except Exception as exc:  # noqa: BLE001 - a report: say why and stop
        rec.note(f"llama-perplexity is not available: {exc}")
        rec.data = {"unavailable": str(exc)}
        rec.write(args.json)
        return 0
    rec.note(f"llama-perplexity: {binary}")
    paths = ensure_gguf_types(["F16", "Q4_K_M"], rec.note)
    chunks = args.chunks or (4 if args.quick else None)
    rounds = 1 if args.quick else 2
    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    ppl_rows: dict[str, dict[str, Any]] = {}
    kld_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=BENCH_VAR) as tmp:
        text_file = Path(tmp) / "eval.txt"
        # As llama_perplexity_reference writes it (the tool drops one newline).
        text_file.write_text(default_eval_text().rstrip("\n"), encoding="utf-8")
        base_file = Path(tmp) / "f16.kld"
        for r in range(rounds):
            for t in ("F16", "Q4_K_M"):
                ours_wall, ours = run_child("ppl", paths[t], chunks=chunks)
                theirs_wall, theirs = run_llama_perplexity(
                    paths[t], text_file, chunks=chunks, extra=[]
                )
                row = ppl_rows.setdefault(t, {"ours": [], "theirs": []})
                row["ours"].append({"wall_s": ours_wall, **ours})
                row["theirs"].append({"wall_s": theirs_wall, **theirs})
                print(
                    f"round {r + 1} {t:7} PPL ours {ours['ppl']:.4f} "
                    f"({ours['pass_s']:.1f} s pass, {ours_wall:.1f} s process) "
                    f"llama.cpp {theirs.get('ppl', float('nan')):.4f} "
                    f"({theirs_wall:.1f} s)  ({load_str()})",
                    flush=True,
                )
            ours_wall, ours = run_child(
                "kld", paths["Q4_K_M"], paths["F16"], chunks=chunks
            )
            base_wall, base = run_llama_perplexity(
                paths["F16"], text_file, chunks=chunks,
                extra=["--kl-divergence-base", str(base_file)],
            )  # fmt: skip
            q_wall, q = run_llama_perplexity(
                paths["Q4_K_M"], text_file, chunks=chunks,
                extra=["--kl-divergence-base", str(base_file), "--kl-divergence"],
            )  # fmt: skip
            base_file.unlink(missing_ok=True)
            kld_runs.append(
                {
                    "ours_wall_s": ours_wall,
                    "ours": ours,
                    "theirs_wall_s": base_wall + q_wall,
                    "theirs_base_wall_s": base_wall,
                    "theirs_q_wall_s": q_wall,
                    "theirs": q,
                    "load": list(os.getloadavg()),
                }
            )
            print(
                f"round {r + 1} KLD ours {ours['kld']:.5f} top-1 "
                f"{ours['same_top_pct']:.2f}% ({ours['pass_s']:.1f} s pass, "
                f"{ours_wall:.1f} s process) llama.cpp {q.get('kld', float('nan')):.5f} "
                f"top-1 {q.get('same_top_pct', float('nan')):.2f}% "
                f"({base_wall + q_wall:.1f} s)  ({load_str()})",
                flush=True,
            )

    summary: dict[str, Any] = {"ppl": {}, "kld": {}}
    for t, row in ppl_rows.items():
        ours_ppl = row["ours"][0]["ppl"]
        theirs_ppl = row["theirs"][0].get("ppl")
        best_pass = min(x["pass_s"] for x in row["ours"])
        best_ours_wall = min(x["wall_s"] for x in row["ours"])
        best_theirs = min(x["wall_s"] for x in row["theirs"])
        summary["ppl"][t] = {
            "ours": ours_ppl,
            "llama_cpp": theirs_ppl,
            "err_pct": _err(ours_ppl, theirs_ppl) if theirs_ppl else None,
            "ours_pass_s": best_pass,
            "ours_process_s": best_ours_wall,
            "llama_cpp_s": best_theirs,
            "time_ratio_pass": best_pass / best_theirs,
            "time_ratio_process": best_ours_wall / best_theirs,
            "ours_log_softmax_s": min(x.get("log_softmax_s", 0.0) for x in row["ours"]),
            "positions": row["ours"][0]["positions"],
        }
    first = kld_runs[0]
    for key in ("ppl_q", "ppl_base", "kld", "same_top_pct"):
        ours_v, theirs_v = first["ours"][key], first["theirs"].get(key)
        summary["kld"][key] = {
            "ours": ours_v,
            "llama_cpp": theirs_v,
            "err_pct": _err(ours_v, theirs_v) if theirs_v else None,
        }
    best_pass = min(x["ours"]["pass_s"] for x in kld_runs)
    best_ours_wall = min(x["ours_wall_s"] for x in kld_runs)
    best_theirs = min(x["theirs_wall_s"] for x in kld_runs)
    summary["kld_time"] = {
        "ours_log_softmax_s": min(
            x["ours"].get("log_softmax_s", 0.0) for x in kld_runs
        ),
        "ours_pass_s": best_pass,
        "ours_process_s": best_ours_wall,
        "llama_cpp_s": best_theirs,
        "time_ratio_pass": best_pass / best_theirs,
        "time_ratio_process": best_ours_wall / best_theirs,
    }
    rec.data = {
        "binary": str(binary),
        "n_ctx": N_CTX,
        "chunks": chunks,
        "rounds": rounds,
        "summary": summary,
        "ppl_runs": ppl_rows,
        "kld_runs": kld_runs,
    }
    for t, s in summary["ppl"].items():
        rec.note(
            f"{t} PPL ours {s['ours']:.4f} vs llama.cpp {s['llama_cpp']:.4f} "
            f"({s['err_pct']:+.3f}%), time {s['time_ratio_pass']:.2f}x "
            f"(pass) / {s['time_ratio_process']:.2f}x (process)"
        )
    k = summary["kld"]["kld"]
    rec.note(
        f"KLD ours {k['ours']:.5f} vs llama.cpp {k['llama_cpp']:.5f} "
        f"({k['err_pct']:+.3f}%), time {summary['kld_time']['time_ratio_pass']:.2f}x"
        f" (pass) / {summary['kld_time']['time_ratio_process']:.2f}x (process)"
    )
    rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
