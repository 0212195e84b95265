"""Measure a GGUF model against its reference with llama.cpp (llama-cpp-python).

Quality is scored the way llama.cpp's ``llama-perplexity`` tool scores it, so
numbers are comparable with what the community publishes:

* the text is tokenized once, with the reference model's tokenizer, adding BOS
  only if the model asks for it; both models then see exactly the same tokens;
* the tokens are cut into ``n_chunk = len(tokens) // n_ctx`` chunks of ``n_ctx``
  tokens (at least two chunks' worth of tokens are required); the KV cache is
  cleared before each chunk and, when the model adds BOS, the chunk's first
  token is replaced by BOS;
* only the second half of each chunk is scored: the logits at positions
  ``n_ctx/2 .. n_ctx-2`` predict tokens ``n_ctx/2+1 .. n_ctx-1``, so every scored
  token has at least ``n_ctx/2`` tokens of context.

On the same positions we compute the mean KL(reference || model) per token and
how often both models' most likely next token agrees. Memory, load time and
speed are measured first, in a fresh process that loads the candidate as a
server would (``quantjobs.backends.gguf.serving``: peak RSS after load and a
warm-up decode, then llama-bench's pp/tg runs with repetitions).

The tests cross-check this scoring against llama.cpp's own ``llama-perplexity``
(``tests/llama_tools.py`` builds it from the llama.cpp sources vendored in the
llama-cpp-python sdist).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    LogFn,
    ProgressFn,
)

# The llama.cpp plumbing lives in the gguf package; re-exported here because the
# evaluator is where callers look for it.
from quantjobs.backends.chat_template import render_chat_prompts
from quantjobs.backends.gguf.serving import ServingRequest, measure_serving
from quantjobs.backends.gguf.session import LlamaLogs, LlamaSession
from quantjobs.backends.task_quality import QaAnswer, normalise_answer, summarise

__all__ = [
    "LlamaLogs",
    "LlamaSession",
    "PerplexityScore",
    "evaluate_gguf",
    "score_tokens",
]


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


@dataclass
class PerplexityScore:
    """Running sums over scored positions, llama-perplexity style."""

    nll_sum: float = 0.0
    count: int = 0

    @property
    def perplexity(self) -> float:
        """exp(mean negative log-likelihood)."""
        return math.exp(self.nll_sum / self.count) if self.count else float("nan")


_T = TypeVar("_T")


def _log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # float32 rows with float64 normalisers: exact to ~1e-7, and half the memory
    # of float64 for (n_ctx/2) x n_vocab arrays (50 MB at 256 x 49k).
    x = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x).sum(axis=1, keepdims=True, dtype=np.float64))
    x -= lse.astype(np.float32)
    out: npt.NDArray[np.float32] = x
    return out


def _nll_sum(logits: npt.NDArray[np.float32], targets: npt.NDArray[np.int64]) -> float:
    """Sum over rows of -log softmax(row)[target], without the full log-softmax."""
    top = logits.max(axis=1, keepdims=True)
    x = logits - top
    np.exp(x, out=x)
    lse = np.log(x.sum(axis=1, dtype=np.float64)) + top[:, 0]
    picked = logits[np.arange(len(targets)), targets].astype(np.float64)
    return float((lse - picked).sum())


def _kld_sums(
    ref_logits: npt.NDArray[np.float32],
    cand_logits: npt.NDArray[np.float32],
    targets: npt.NDArray[np.int64],
) -> tuple[float, float, float, int]:
    """(reference NLL, candidate NLL, KL(ref || cand), same top-1) summed over rows."""
    ref = _log_softmax(ref_logits)
    cand = _log_softmax(cand_logits)
    rows = np.arange(len(targets))
    ref_nll = -float(ref[rows, targets].sum(dtype=np.float64))
    cand_nll = -float(cand[rows, targets].sum(dtype=np.float64))
    agree = int((ref.argmax(axis=1) == cand.argmax(axis=1)).sum())
    cand -= ref  # cand - ref, in place: log q - log p
    np.exp(ref, out=ref)  # p
    kl = -float(np.einsum("ij,ij->", ref, cand, dtype=np.float64))
    return ref_nll, cand_nll, kl, agree


def _by_rows(
    pool: ThreadPoolExecutor,
    parts: int,
    fn: Callable[..., _T],
    n_rows: int,
    *arrays: npt.NDArray[Any],
) -> list[_T]:
    """``fn`` on ``parts`` row blocks of ``arrays``, in the pool's threads.

    numpy releases the GIL in its loops, so the blocks run on all the cores the
    job has, as llama-perplexity spreads its own softmax over its threads.
    """
    parts = max(1, min(parts, n_rows))
    bounds = [n_rows * i // parts for i in range(parts + 1)]
    futures = [
        pool.submit(fn, *(a[lo:hi] for a in arrays))
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    return [f.result() for f in futures]


def _chunks(tokens: Sequence[int], n_ctx: int, max_chunks: int | None) -> int:
    if len(tokens) < 2 * n_ctx:
        raise BackendError(
            f"The evaluation text is {len(tokens):,} tokens long; perplexity with a "
            f"{n_ctx}-token context needs at least {2 * n_ctx:,}. Use a longer text "
            "or a smaller context."
        )
    n_chunk = len(tokens) // n_ctx
    return min(n_chunk, max_chunks) if max_chunks else n_chunk


def _chunk_tokens(
    tokens: Sequence[int], index: int, n_ctx: int, bos: int | None
) -> list[int]:
    chunk = list(tokens[index * n_ctx : (index + 1) * n_ctx])
    if bos is not None:
        chunk[0] = bos
    return chunk


def score_tokens(
    session: LlamaSession,
    tokens: Sequence[int],
    *,
    n_ctx: int,
    max_chunks: int | None = None,
) -> PerplexityScore:
    """Perplexity of one model over ``tokens``, exactly as llama-perplexity scores it."""
    n_chunk = _chunks(tokens, n_ctx, max_chunks)
    first = n_ctx // 2
    score = PerplexityScore()
    bos = session.bos if session.add_bos else None
    threads = max(1, session.n_threads)
    with ThreadPoolExecutor(threads) as pool:
        for index in range(n_chunk):
            chunk = _chunk_tokens(tokens, index, n_ctx, bos)
            session.clear()
            logits = session.decode(chunk, logits_from=first)
            start = index * n_ctx + first + 1
            targets = np.asarray(tokens[start : (index + 1) * n_ctx], dtype=np.int64)
            sums = _by_rows(pool, threads, _nll_sum, len(targets), logits, targets)
            score.nll_sum += sum(sums)
            score.count += len(targets)
    return score


_normalise_answer = normalise_answer  # the name the tests and callers know


@dataclass(frozen=True)
class QaPrompt:
    """One question as the model will see it (chat template applied or not)."""

    text: str  # what was tokenized
    tokens: list[int]


def qa_prompts(
    session: LlamaSession,
    qa_pairs: Sequence[tuple[str, str]],
    *,
    chat_template: str,
    log: LogFn,
) -> list[QaPrompt]:
    """The questions as token lists, in the model's chat format when it has one.

    ``chat_template``: "auto" (use the file's template if it has one) or "off".
    The template is rendered in a sandboxed process (it comes from the file).
    """
    template = session.chat_template() if chat_template != "off" else None
    if not template:
        if chat_template != "off":
            log("exact-match: the model has no chat template; bare prompts")
        return [QaPrompt(p, session.tokenize(p)) for p, _ in qa_pairs]
    bos = session.token_text(session.bos) if session.bos >= 0 else ""
    eos_id = int(session._llama.llama_vocab_eos(session.vocab))
    eos = session.token_text(eos_id) if eos_id >= 0 else ""
    rendered = render_chat_prompts(
        template, [p for p, _ in qa_pairs], bos_token=bos, eos_token=eos
    )
    log(f"exact-match: prompts in the model's chat template ({len(rendered)} rendered)")
    out = []
    for text in rendered:
        # A template that writes BOS itself must not get a second one.
        add_special = not (bos and text.startswith(bos))
        tokens = session.tokenize(text, add_special=add_special, parse_special=True)
        out.append(QaPrompt(text, tokens))
    return out


def answer_questions(
    session: LlamaSession,
    prompts: Sequence[QaPrompt],
    qa_pairs: Sequence[tuple[str, str]],
    log: LogFn,
) -> list[QaAnswer]:
    """Greedy first-line answers of ``session`` to every question."""
    answers = []
    for index, (prompt, (question, answer)) in enumerate(
        zip(prompts, qa_pairs, strict=True)
    ):
        prompt_tokens = prompt.tokens
        if len(prompt_tokens) >= session.n_ctx:
            log(
                f"exact-match: prompt of {len(prompt_tokens)} tokens skipped (too long)"
            )
            answers.append(QaAnswer(index, question, answer, "", skipped=True))
            continue
        answer_len = len(session.tokenize(answer, add_special=False))
        budget = min(answer_len + 8, max(1, session.n_ctx - len(prompt_tokens)))

        def stop(generated: list[int]) -> bool:
            text = session.detokenize(generated)
            return "\n" in text.lstrip()

        generated, _, _ = session.generate_greedy(prompt_tokens, budget, stop=stop)
        lines = session.detokenize(generated).strip().split("\n")
        answers.append(QaAnswer(index, question, answer, lines[0] if lines else ""))
    return answers


def evaluate_gguf(
    request: EvaluateRequest, progress: ProgressFn, log: LogFn
) -> EvaluateResult:
    """Perplexity, KL divergence, top-1 agreement and speed of a GGUF vs its reference."""
    if request.model_kind != "gguf" or request.reference_kind != "gguf":
        raise BackendError(
            "The GGUF evaluator compares a GGUF model with a GGUF reference."
        )
    n_ctx = int(request.context_tokens)
    if n_ctx < 16 or n_ctx % 2:
        raise BackendError("context_tokens must be an even number of at least 16.")
    threads = max(1, int(request.threads))

    # Tokenize first, with the reference's tokenizer alone (no weights): a text
    # too short for the context is refused before any model is loaded.
    with LlamaSession(request.reference_path, n_ctx=n_ctx, vocab_only=True) as vocab:
        tokens = vocab.tokenize(request.text)
        ref_vocab_size = vocab.n_vocab
    n_chunk = _chunks(tokens, n_ctx, request.max_chunks)

    # Memory and speed next, in a fresh process that loads the artifact as a
    # server would: this process has just quantized, its RSS is the job's.
    progress(0.0, "measure memory and speed (fresh process)")
    serving = measure_serving(
        ServingRequest(
            model_path=request.model_path,
            context_tokens=n_ctx,
            threads=threads,
            prompt_tokens=int(request.bench_prompt_tokens),
            generation_tokens=int(request.generation_tokens),
            repetitions=int(request.bench_repetitions),
        )
    )
    pp, tg = serving.prompt, serving.generation
    log(
        f"serving process {serving.pid}: peak RSS "
        f"{serving.peak_memory_bytes / 2**20:.1f} MiB at n_ctx {n_ctx}; "
        f"{pp.test} {pp.median:.1f} tok/s (min {min(pp.runs_tokens_per_s):.1f}, "
        f"max {max(pp.runs_tokens_per_s):.1f}), {tg.test} {tg.median:.1f} tok/s "
        f"(min {min(tg.runs_tokens_per_s):.1f}, max {max(tg.runs_tokens_per_s):.1f}); "
        f"{len(tg.runs_tokens_per_s)} runs, {serving.threads} threads, load "
        f"{serving.load_average_before[0]:.2f}->{serving.load_average_after[0]:.2f}"
    )
    contended = [
        f"{samples.test} {n} of {len(samples.runs_tokens_per_s)}"
        for samples in (pp, tg)
        if (n := int(samples.summary()["contended_runs"]))
    ]
    if contended:
        log(
            "serving: runs that got less than 90% of their threads' CPU time "
            f"(another process was running): {', '.join(contended)}"
        )
    if serving.priority != "normal":
        log(f"serving: measured with {serving.priority} scheduling priority")
    for note in serving.notes:
        log(f"serving: {note}")

    progress(0.1, "load")
    candidate = LlamaSession(request.model_path, n_ctx=n_ctx, n_threads=threads)
    with contextlib.ExitStack() as stack:
        stack.callback(candidate.close)
        log(f"loaded {request.model_path.name} in {candidate.load_time_s:.2f} s")
        if ref_vocab_size != candidate.n_vocab:
            raise BackendError(
                f"The model has {candidate.n_vocab:,} tokens in its vocabulary and the "
                f"reference {ref_vocab_size:,}; they cannot be compared."
            )

        prompts: list[QaPrompt] = []
        cand_answers: list[QaAnswer] = []
        if request.qa_pairs:
            progress(0.1, "exact-match")
            prompts = qa_prompts(
                candidate,
                request.qa_pairs,
                chat_template=request.chat_template,
                log=log,
            )
            cand_answers = answer_questions(candidate, prompts, request.qa_pairs, log)

        first = n_ctx // 2
        candidate.clear()
        first_logits: npt.NDArray[np.float32] | None = candidate.decode(
            _chunk_tokens(
                tokens, 0, n_ctx, candidate.bos if candidate.add_bos else None
            ),
            logits_from=first,
        )

        progress(0.15, "load reference")
        reference = LlamaSession(request.reference_path, n_ctx=n_ctx, n_threads=threads)
        stack.callback(reference.close)
        bos = reference.bos if reference.add_bos else None
        log(
            f"scoring {n_chunk} chunks of {n_ctx} tokens "
            f"({n_chunk * (n_ctx - first - 1):,} positions) of {len(tokens):,} tokens"
        )

        ref_score, cand_score = PerplexityScore(), PerplexityScore()
        kl_sum = 0.0
        agree = 0
        pool = stack.enter_context(ThreadPoolExecutor(threads))
        for index in range(n_chunk):
            chunk = _chunk_tokens(tokens, index, n_ctx, bos)
            targets = np.asarray(
                tokens[index * n_ctx + first + 1 : (index + 1) * n_ctx], dtype=np.int64
            )

            reference.clear()
            ref_logits = reference.decode(chunk, logits_from=first)[:-1]
            if first_logits is not None:
                cand_logits, first_logits = first_logits, None
            else:
                candidate.clear()
                cand_logits = candidate.decode(chunk, logits_from=first)
            blocks = _by_rows(
                pool,
                threads,
                _kld_sums,
                len(targets),
                ref_logits,
                cand_logits[:-1],
                targets,
            )
            for ref_nll, cand_nll, kl, same in blocks:
                ref_score.nll_sum += ref_nll
                cand_score.nll_sum += cand_nll
                kl_sum += kl
                agree += same
            ref_score.count += len(targets)
            cand_score.count += len(targets)
            progress(0.2 + 0.8 * (index + 1) / n_chunk, "score")

        task: dict[str, Any] | None = None
        if request.qa_pairs:
            progress(1.0, "exact-match (reference)")
            ref_answers = answer_questions(reference, prompts, request.qa_pairs, log)
            task = summarise(ref_answers, cand_answers)
            task["chat_template"] = prompts[0].text != request.qa_pairs[0][0]
            log(
                f"exact match {task['exact_match']:.3f} (reference "
                f"{task['reference_exact_match']:.3f}), normalised "
                f"{task['normalised_match']:.3f} (reference "
                f"{task['reference_normalised_match']:.3f}) over "
                f"{task['questions']} prompts"
            )

        count = cand_score.count
        result = EvaluateResult(
            perplexity=cand_score.perplexity,
            base_perplexity=ref_score.perplexity,
            kl_divergence=kl_sum / count,
            top1_agreement=agree / count,
            tokens_evaluated=count,
            prompt_tokens_per_s=pp.median,
            generation_tokens_per_s=tg.median,
            # The serving process's peak: the artifact's footprint, not the job's.
            peak_memory_bytes=serving.peak_memory_bytes,
            load_time_s=serving.load_time_s,
            exact_match=task["exact_match"] if task else None,
            serving=serving.to_dict(),
            task=task,
        )
    log(
        f"perplexity {result.perplexity:.4f} (reference {result.base_perplexity:.4f}), "
        f"KLD {result.kl_divergence:.5f}, top-1 {result.top1_agreement:.4f}"
    )
    progress(1.0, "done")
    return result
