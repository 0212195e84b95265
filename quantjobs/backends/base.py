"""The small interface every quantization / evaluation backend implements.

Backends are plain Python: they never import Django or Celery. They run inside a
child process started by the job runner (``quantjobs.backends.child``), receive a
``progress(fraction, stage)`` callback and either return a result dataclass or
raise :class:`BackendError` with a message a user can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

ProgressFn = Callable[[float, str], None]
"""``progress(fraction, stage)``: fraction in [0, 1] of this step, short stage name."""

LogFn = Callable[[str], None]
"""``log(line)``: one human-readable line for the job's log."""

SourceKind = Literal["gguf", "hf"]


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed (artifacts, caches and samples are large)."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class BackendError(Exception):
    """A failure the user can understand and act on; its message is shown as-is."""


@dataclass(frozen=True)
class QuantizeRequest:
    """What to quantize, into which format, and where to write."""

    source_path: Path  # a GGUF file, or a Hugging Face safetensors directory
    source_kind: SourceKind
    format: str  # planner format string: "gguf-Q4_K_M", "awq-4bit-g64", "rtn-int4-g64"
    work_dir: Path  # private temporary directory of the job; write only here
    calibration_text: str | None = None
    threads: int = 2
    options: dict[str, Any] = field(default_factory=dict)
    # A folder the job's formats share, for what one format can reuse from an
    # earlier one (the GGUF backend's F16 base); None: nothing is shared.
    shared_dir: Path | None = None


@dataclass(frozen=True)
class QuantizeResult:
    """The produced artifact (inside work_dir) and the reference model to compare with."""

    artifact_path: Path
    format: str
    # What to evaluate against (F16 GGUF, HF dir): the unquantized source, or an
    # already quantized source dequantized (see backends/reference.py).
    reference_path: Path
    reference_kind: SourceKind
    artifact_kind: SourceKind
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateRequest:
    """Evaluate ``model_path`` against ``reference_path`` on the same tokens."""

    model_path: Path
    model_kind: SourceKind
    reference_path: Path
    reference_kind: SourceKind
    text: str
    context_tokens: int = 512
    max_chunks: int | None = None
    generation_tokens: int = 64
    threads: int = 2
    qa_pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EvaluateResult:
    """Quality and speed of one model measured against its reference."""

    perplexity: float
    base_perplexity: float
    kl_divergence: float  # mean KL(reference || model) per token, nats
    top1_agreement: float  # fraction of positions whose argmax token agrees
    tokens_evaluated: int
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    peak_memory_bytes: int  # peak RSS of the process that held the model
    load_time_s: float
    gpu_peak_memory_bytes: int | None = None
    exact_match: float | None = None  # fraction of qa_pairs answered exactly


class Backend(Protocol):
    """A quantization method: produce an artifact, then measure it."""

    name: str
    queue: Literal["cpu", "gpu"]

    def quantize(
        self, request: QuantizeRequest, progress: ProgressFn, log: LogFn
    ) -> QuantizeResult: ...

    def evaluate(
        self, request: EvaluateRequest, progress: ProgressFn, log: LogFn
    ) -> EvaluateResult: ...
