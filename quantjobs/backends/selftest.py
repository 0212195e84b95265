"""A self-test backend: proves a worker runs jobs end to end, with no model at all.

``quantize`` walks through a few timed steps reporting progress and writes a small
text artifact; ``evaluate`` reports neutral numbers for it. Operators run it to
check a new worker; the test suite runs it to check the job machinery. Options
exercise the machinery's edges: ``fail`` (every format) or ``fail_format`` (one
format) raise a backend error, ``allocate_bytes`` asks for that much memory and
``spin_s`` burns CPU time, to check a worker's resource limits;
``metrics_by_format`` (``{format: {"perplexity": 1.2, "kl_divergence": 0.1,
"exact_match_drop_points": 4}}``) makes ``evaluate`` report those numbers, to
drive a search's stop rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    LogFn,
    ProgressFn,
    QuantizeRequest,
    QuantizeResult,
)


class SelftestBackend:
    """Steps, progress and one small artifact; no model is loaded."""

    name = "selftest"
    queue = "cpu"

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult:
        """Walk ``steps`` steps of ``step_s`` seconds, then write the artifact."""
        steps = int(request.options.get("steps", 5))
        step_s = float(request.options.get("step_s", 0.5))
        if not 1 <= steps <= 1000 or not 0 <= step_s <= 60:
            raise BackendError("selftest: steps must be 1-1000 and step_s 0-60.")
        if request.options.get("fail"):
            raise BackendError(str(request.options["fail"]))
        if request.options.get("fail_format") == request.format:
            raise BackendError(f"selftest: {request.format} was asked to fail.")
        allocate = int(request.options.get("allocate_bytes", 0))
        if allocate > 0:
            log(f"self-test: allocating {allocate} bytes")
            block = bytearray(allocate)  # MemoryError at the job's memory limit
            del block
        spin_s = float(request.options.get("spin_s", 0))
        if spin_s > 0:
            log(f"self-test: burning {spin_s:.0f} s of CPU time")
            end = time.process_time() + spin_s
            while time.process_time() < end:
                pass
        for step in range(steps):
            progress(step / steps, f"Step {step + 1} of {steps}")
            log(f"self-test step {step + 1} of {steps}")
            time.sleep(step_s)
        body = (
            f"Quantplan worker self-test, pid {os.getpid()}, {steps} steps\n".encode()
        )
        wanted = (request.options.get("metrics_by_format") or {}).get(request.format)
        if isinstance(wanted, dict):
            # Carried in the artifact: evaluate() sees the file, not the options.
            body += f"metrics {json.dumps(wanted)}\n".encode()
        digest = hashlib.sha256(body).hexdigest()
        final = request.work_dir / "selftest.txt"
        temp = final.with_suffix(".partial")
        temp.write_bytes(body + f"sha256-of-above {digest}\n".encode())
        os.replace(temp, final)
        progress(1.0, "Artifact written")
        return QuantizeResult(
            artifact_path=final,
            format=request.format,
            reference_path=final,
            reference_kind="gguf",
            artifact_kind="gguf",
            metadata={"steps": steps},
        )

    def evaluate(
        self, request: EvaluateRequest, progress: ProgressFn, log: LogFn
    ) -> EvaluateResult:
        """Neutral numbers, once the artifact's checksum line is verified.

        The self-test has no model: it checks that the artifact written by
        ``quantize`` reached the evaluation step intact, then reports a perfect
        match (perplexity 1.0, no divergence, no speed).
        """
        wanted = _verify_artifact(request.model_path)
        progress(1.0, "Compared the artifact with itself")
        return EvaluateResult(
            perplexity=float(wanted.get("perplexity", 1.0)),
            base_perplexity=1.0,
            kl_divergence=float(wanted.get("kl_divergence", 0.0)),
            top1_agreement=1.0,
            tokens_evaluated=0,
            prompt_tokens_per_s=0.0,
            generation_tokens_per_s=0.0,
            peak_memory_bytes=0,
            load_time_s=0.0,
            task=(
                {"exact_match_drop": {"points": wanted["exact_match_drop_points"]}}
                if "exact_match_drop_points" in wanted
                else None
            ),
        )


def _verify_artifact(path: Path) -> dict[str, float]:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BackendError(
            f"selftest: cannot read the artifact {path.name}: {exc.strerror}."
        ) from None
    body, _, last = content.rstrip(b"\n").rpartition(b"\n")
    expected = b"sha256-of-above " + hashlib.sha256(body + b"\n").hexdigest().encode()
    if last != expected:
        raise BackendError(f"selftest: the artifact {path.name} fails its checksum.")
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("metrics "):
            loaded = json.loads(line.removeprefix("metrics "))
            return {str(k): float(v) for k, v in loaded.items()}
    return {}
