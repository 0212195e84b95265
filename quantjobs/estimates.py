"""Estimates for the job-time outlook that depend on what a job will compute."""

from __future__ import annotations

from quantjobs.models import Job

# Characters per token of English prose, to guess a calibration text's tokens
# before any tokenizer has seen it (the importance matrix reports the real count).
CHARS_PER_TOKEN = 4.0


def job_calibration_tokens(*, job: Job) -> tuple[int, int]:
    """(importance matrices the job will compute, calibration tokens each will use,
    estimated from the text's length, its 512-token chunks and the
    ``imatrix_chunks`` cap). One at most: the job's formats share the matrix."""
    if job.method != Job.Method.GGUF:
        return 0, 0
    from quantjobs.backends.base import BackendError
    from quantjobs.backends.gguf.backend import want_imatrix
    from quantjobs.backends.gguf.ftypes import parse_gguf_format

    options = job.options or {}
    count = 0
    for fmt in job.formats or []:
        try:
            if want_imatrix(parse_gguf_format(fmt), options.get("imatrix")):
                count += 1
        except BackendError:
            continue
    if not count:
        return 0, 0
    count = 1  # made for the first format that needs it, reused by the others
    path = options.get("calibration_text_path")
    chars: int
    if path:
        import os

        try:
            chars = os.stat(path).st_size
        except OSError:
            return count, 0
    else:
        from quantjobs.evaltext import default_calibration_text

        chars = len(default_calibration_text())
    n_ctx = int(options.get("imatrix_context_tokens", 512) or 512)
    chunks = int(chars / CHARS_PER_TOKEN) // n_ctx
    cap = options.get("imatrix_chunks")
    if cap:
        chunks = min(chunks, int(cap))
    return count, chunks * n_ctx
