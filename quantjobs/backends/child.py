"""The child process that runs one job's backend, isolated from the worker.

Run as ``python -m quantjobs.backends.child REQUEST.json``. It never imports Django:
it reads the request, resolves the source, runs ``quantize`` then ``evaluate`` for
each format and reports to its parent as JSON lines on the *original* stdout:

    {"event": "progress", "fraction": 0.42, "stage": "Quantizing Q4_K_M"}
    {"event": "log", "line": "..."}
    {"event": "result", "format": "gguf-Q4_K_M", "artifact_path": "...", ...}
    {"event": "error", "kind": "backend" | "internal", "message": "..."}

Everything else the process (or a C library inside it) prints goes to stderr, which
the parent keeps in a file. A crash (SIGABRT in llama.cpp, the OOM killer) therefore
kills only this process, and the parent turns it into a FAILED job with a reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import IO, Any

from quantjobs.backends import BackendError, load_backend
from quantjobs.backends.base import (
    EvaluateRequest,
    EvaluateResult,
    QuantizeRequest,
    SourceKind,
    peak_rss_bytes,
)
from quantjobs.backends.reference import describe as describe_reference
from quantjobs.backends.reference import quantized_type

# llama-bench's defaults (pp512, tg128, 5 repetitions); job options override them.
DEFAULT_PROMPT_TOKENS = 512
DEFAULT_GENERATION_TOKENS = 128
DEFAULT_REPETITIONS = 5
QUANTIZE_SHARE = 0.6  # of each format's progress; evaluation takes the rest


class Reporter:
    """Writes protocol events to the parent, one JSON object per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.base = 0.0
        self.span = 1.0
        self.prefix = ""
        self.current_format = ""  # the format being made, named in an error event
        self._last_emit = 0.0

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event immediately."""
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def scope(self, base: float, span: float, prefix: str) -> None:
        """Map the next step's own 0..1 progress onto [base, base + span] overall."""
        self.base, self.span, self.prefix = base, span, prefix

    def progress(self, fraction: float, stage: str) -> None:
        """The ``progress`` callback handed to backends (rate limited)."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if now - self._last_emit < 0.2 and 0.0 < fraction < 1.0:
            return
        self._last_emit = now
        overall = self.base + self.span * fraction
        label = f"{self.prefix}: {stage}" if self.prefix else stage
        self.emit({"event": "progress", "fraction": round(overall, 4), "stage": label})

    def log(self, line: str) -> None:
        """The ``log`` callback handed to backends."""
        self.emit({"event": "log", "line": str(line)[:2000]})


def pack_directory(directory: Path, dest: Path) -> Path:
    """Pack a model directory into an uncompressed tar (weights do not compress)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=f"{directory.name}/{path.relative_to(directory)}")
    return dest


def resolve_source(
    request: dict[str, Any], work_dir: Path, reporter: Reporter
) -> tuple[Path, SourceKind]:
    """Turn the request's source description into a local GGUF file or HF directory."""
    source = request["source"]
    kind = source["kind"]
    if kind == "sample":
        from quantjobs.samples import SampleError, sample_path

        try:
            return sample_path(source["ref"]), "gguf"
        except SampleError as exc:
            raise BackendError(str(exc)) from None
    if kind == "path":
        path = Path(source["path"])
        if path.is_file() and path.suffix.lower() == ".gguf":
            from quantjobs.backends.gguf_inspect import inspect_gguf

            inspect_gguf(
                path, llama_check=True
            )  # untrusted: checked in its own process
            return path, "gguf"
        if path.is_dir():
            from quantjobs.backends.hf_source import validate_hf_dir

            validate_hf_dir(path)
            return path, "hf"
        raise BackendError(
            f"{path.name}: not a .gguf file or a Hugging Face model directory."
        )
    if kind == "hf":
        from quantjobs.backends.hf_source import download_hf

        reporter.log(f"Downloading {source['ref']} from Hugging Face")
        download = download_hf(
            source["ref"],
            source.get("revision") or None,
            work_dir / "download",
            log=reporter.log,
        )
        reporter.emit({"event": "revision", "revision": download.commit_sha})
        _emit_model_config(download.path, reporter)
        return download.path, "hf"
    raise BackendError(f"Unknown source kind {kind!r}.")


def _emit_model_config(path: Path, reporter: Reporter) -> None:
    """Hand the downloaded config.json to the runner, which sizes the projection."""
    try:
        text = (path / "config.json").read_text(encoding="utf-8")[:1_000_000]
        config = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return  # validate_hf_dir reports a missing or broken config.json
    if isinstance(config, dict):
        reporter.emit({"event": "model_config", "config": config})


def ensure_hf(
    path: Path, kind: SourceKind, request: dict[str, Any], reporter: Reporter
) -> Path:
    """Torch methods need a Hugging Face directory: convert a GGUF source first."""
    if kind == "hf":
        return path
    from quantjobs.backends.gguf_to_hf import convert_cached

    # The conversion is deterministic: cached by the GGUF's content hash, built in
    # a private folder and renamed into place so concurrent jobs never see half.
    cache_root = Path(request.get("cache_dir") or Path(request["work_dir"]) / "cache")
    reporter.scope(0.0, 0.05, "Converting GGUF to Hugging Face format")
    return convert_cached(path, cache_root, reporter.progress, reporter.log)


def gguf_origin_type(path: Path) -> str | None:
    """The quantization of a GGUF source ('Q4_1'), or None when it is all float."""
    from quantjobs.backends.gguf_inspect import inspect_gguf

    info = inspect_gguf(path, timeout_s=120)
    return quantized_type(info.file_type_name, info.types_histogram)


def load_eval_text(request: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The evaluation text and optional prompt/answer pairs of the request."""
    from quantjobs.evaltext import default_eval_text, parse_eval_file

    path = request.get("eval_text_path")
    if not path:
        return default_eval_text(), ()
    eval_path = Path(path)
    parsed = parse_eval_file(eval_path.name, eval_path.read_bytes())
    return parsed.text, tuple(parsed.qa_pairs)


def calibration_text(request: dict[str, Any]) -> tuple[str, str]:
    """(text, where from) for AWQ/GPTQ/imatrix: the user's file, else built-in.

    The built-in text is pydoc topics the evaluation never uses.
    """
    from quantjobs.evaltext import (
        EvalTextError,
        default_calibration_text,
        parse_calibration_text,
    )

    options = request.get("options") or {}
    path = options.get("calibration_text_path")
    if not path:
        return default_calibration_text(), "built-in"
    name = str(options.get("calibration_text_name") or Path(path).name)
    try:
        return parse_calibration_text(Path(path).read_bytes(), name), name
    except OSError:
        raise BackendError(
            f"The calibration text {name} is no longer on the server; upload it again."
        ) from None
    except EvalTextError as exc:
        raise BackendError(str(exc)) from None


def _cpu_defaults(options: dict[str, Any]) -> None:
    """GPU-queue methods on a worker without CUDA: allowed for small models (the
    backend's own size limit still applies), with calibration sized for a CPU."""
    import torch

    if torch.cuda.is_available():
        return
    options.setdefault("allow_cpu", True)
    options.setdefault("calibration_samples", 16)
    options.setdefault("calibration_seq_len", 256)


def run(request: dict[str, Any], reporter: Reporter) -> None:
    """Quantize and evaluate every requested format, reporting each result."""
    work_dir = Path(request["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    backend = load_backend(request["method"])
    threads = int(request.get("threads") or 2)
    options = dict(request.get("options") or {})

    reporter.scope(0.0, 0.02, "Preparing")
    reporter.progress(0.0, "Resolving the model source")
    source_path, source_kind = resolve_source(request, work_dir, reporter)
    if request["method"] in {"awq", "gptq", "rtn"}:
        _cpu_defaults(options)
    origin_type: str | None = None
    if request["method"] in {"awq", "gptq", "rtn"} or request["source"].get("as_hf"):
        if source_kind == "gguf":
            # The backend only sees the converted copy: say here what it came from.
            origin_type = gguf_origin_type(source_path)
        source_path = ensure_hf(source_path, source_kind, request, reporter)
        source_kind = "hf"
    text, qa_pairs = load_eval_text(request)
    calib: str | None = None
    calib_source = ""
    if request["method"] != "selftest":
        calib, calib_source = calibration_text(request)
        reporter.log(
            f"calibration text: {calib_source}, {len(calib):,} characters "
            "(used by the importance matrix, AWQ and GPTQ)"
        )

    formats: list[str] = list(request["formats"])
    search = request.get("search") or None
    if search:
        reporter.log(
            f"search: {len(formats)} candidates, smallest first: " + ", ".join(formats)
        )
    shared_dir = work_dir / "shared"
    shared_dir.mkdir(exist_ok=True)
    share = 0.95 / len(formats)
    for index, fmt in enumerate(formats):
        reporter.current_format = fmt
        start = 0.05 + index * share
        out_dir = work_dir / f"out-{index}"
        out_dir.mkdir(exist_ok=True)
        reporter.scope(start, share * QUANTIZE_SHARE, f"{fmt} quantize")
        quantized = backend.quantize(
            QuantizeRequest(
                source_path=source_path,
                source_kind=source_kind,
                format=fmt,
                work_dir=out_dir,
                calibration_text=calib,
                threads=threads,
                options=options,
                shared_dir=shared_dir,
            ),
            reporter.progress,
            reporter.log,
        )
        reporter.scope(
            start + share * QUANTIZE_SHARE,
            share * (1 - QUANTIZE_SHARE),
            f"{fmt} evaluate",
        )
        measured: EvaluateResult = backend.evaluate(
            EvaluateRequest(
                model_path=quantized.artifact_path,
                model_kind=quantized.artifact_kind,
                reference_path=quantized.reference_path,
                reference_kind=quantized.reference_kind,
                text=text,
                context_tokens=int(options.get("context_tokens", 512)),
                max_chunks=options.get("max_chunks"),
                generation_tokens=int(
                    options.get("bench_generation_tokens")
                    or options.get("generation_tokens")
                    or DEFAULT_GENERATION_TOKENS
                ),
                threads=threads,
                qa_pairs=qa_pairs,
                bench_prompt_tokens=int(
                    options.get("bench_prompt_tokens", DEFAULT_PROMPT_TOKENS)
                ),
                bench_repetitions=int(
                    options.get("bench_repetitions", DEFAULT_REPETITIONS)
                ),
                chat_template=str(options.get("chat_template") or "auto"),
            ),
            reporter.progress,
            reporter.log,
        )
        reference = None
        if request["method"] != "selftest":
            reference = describe_reference(
                origin_type=origin_type,
                base=quantized.metadata.get("base"),
                source_kind=source_kind,
            )
            if index == 0:
                reporter.log(f"Reference for quality: {reference['label']}.")
                if reference["warning"]:
                    reporter.log(f"Warning: {reference['warning']}")
        artifact = quantized.artifact_path
        # A digest the backend already made of this very file is passed on, so the
        # publisher (quantjobs.artifacts) does not hash it again.
        known_sha256 = quantized.metadata.get("sha256")
        if artifact.is_dir():
            reporter.progress(1.0, "Packing the model directory")
            artifact = pack_directory(artifact, out_dir / f"{artifact.name}.tar")
            known_sha256 = None
        reporter.emit(
            {
                "event": "result",
                "format": quantized.format,
                "artifact_path": str(artifact),
                "artifact_kind": quantized.artifact_kind,
                "size_bytes": artifact.stat().st_size,
                "sha256": known_sha256 if isinstance(known_sha256, str) else None,
                "metrics": {
                    **dataclasses.asdict(measured),
                    # What the job itself needed so far (quantize + score), as
                    # opposed to the artifact's serving footprint above.
                    "job_peak_memory_bytes": peak_rss_bytes(),
                    "job_pid": os.getpid(),
                },
                "metadata": {
                    **quantized.metadata,
                    "calibration_source": calib_source or None,
                },
                "reference": reference,
            }
        )
        if search and _search_trial(search, quantized.format, measured, reporter):
            left = len(formats) - index - 1
            if left:
                reporter.log(
                    f"search: stopping early; {left} larger candidate"
                    f"{'s' if left > 1 else ''} not tried"
                )
            break
    reporter.current_format = ""


def _search_trial(
    search: dict[str, Any], fmt: str, measured: EvaluateResult, reporter: Reporter
) -> bool:
    """Judge one candidate against the search bar, report it; True: stop here."""
    from planner.engine.search import judge, loss_from_metrics, search_bar

    bar = search_bar(str(search["metric"]), search["max"])
    value = loss_from_metrics(bar.metric, dataclasses.asdict(measured))
    trial = judge(bar, fmt, value)
    reporter.emit({"event": "trial", **trial.to_dict()})
    return trial.passed


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the worker that started it dies.

    The child runs in its own session (so a cancel kills its whole group), which
    also means a ``kill -9`` of the worker would otherwise leave it orphaned.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = int(os.environ.get("QUANTPLAN_PARENT_PID", "0"))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def apply_limits(limits: dict[str, Any]) -> None:
    """Cap this process (and what it starts) at the job's memory and CPU time.

    RLIMIT_DATA rather than RLIMIT_AS: read-only mappings of model files and the
    address space libraries reserve up front are not memory the job uses.
    RLIMIT_CPU's soft limit sends SIGXCPU, the hard one (a minute later) SIGKILL.
    """
    import resource

    memory = int(limits.get("memory_bytes") or 0)
    cpu_s = int(limits.get("cpu_s") or 0)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    if cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 60))


def _memory_message(limits: dict[str, Any]) -> str:
    memory = int(limits.get("memory_bytes") or 0)
    if memory:
        return (
            f"The job reached its memory limit ({memory / 1024**3:.1f} GiB, sized from "
            "its projection with headroom); use a smaller model, fewer formats or a "
            "worker with more memory, or ask the operator to raise "
            "QUANTPLAN_JOB_MEMORY_FLOOR_BYTES."
        )
    return "The worker ran out of memory; use a smaller model or a worker with more memory."


def main(argv: list[str]) -> int:
    """Entry point: run the request, report, and exit 0 (done) or 1 (failed)."""
    die_with_parent()
    # The protocol owns the real stdout; everything else printed goes to stderr.
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reporter = Reporter(events)
    limits: dict[str, Any] = {}

    def error(kind: str, message: str, **extra: Any) -> None:
        event = {"event": "error", "kind": kind, "message": message, **extra}
        if reporter.current_format:
            event["format"] = reporter.current_format
        reporter.emit(event)

    try:
        request = json.loads(Path(argv[1]).read_text())
        limits = dict(request.get("limits") or {})
        apply_limits(limits)
        run(request, reporter)
    except BackendError as exc:
        error("backend", str(exc))
        return 1
    except MemoryError:
        error("backend", _memory_message(limits))
        return 1
    except Exception as exc:
        traceback.print_exc()
        error(
            "internal",
            f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-8000:],
        )
        return 1
    reporter.emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
