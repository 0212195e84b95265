"""Quality and speed of a Hugging Face-format model against its reference, in torch.

Used by the RTN, AWQ and GPTQ backends; GGUF models are measured by llama.cpp in
the gguf backend, and the two report the same numbers the same way:

- one token stream (the reference tokenizer's), cut into chunks of
  ``context_tokens``; the candidate must tokenize the text identically;
- perplexity scored like llama.cpp's ``perplexity`` tool: only the second half of
  each chunk (positions ``n/2 .. n-2`` predicting the next token), so every scored
  token has at least ``n/2`` tokens of context;
- mean KL(reference ‖ candidate) and top-1 agreement over the same positions;
- prefill tokens/s over the scored chunks, greedy decode tokens/s (KV cache),
  load time, peak memory, and exact match on question/answer pairs.

The reference runs first and its log-probabilities go to a temporary file; it is
freed before the candidate loads, so memory figures are the candidate's alone.
Packed AWQ/GPTQ checkpoints are unpacked to float weights (see
``torchq.checkpoint``): the quality numbers are exact, the speed is that of plain
float matmuls on this device, not of the int4 kernels.
"""

from __future__ import annotations

import gc
import math
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    LogFn,
    ProgressFn,
)
from quantjobs.backends.hf_source import validate_hf_dir
from quantjobs.backends.task_quality import QaAnswer, summarise
from quantjobs.backends.torchq.checkpoint import LoadedModel, load_causal_lm

MAX_LOGIT_STORE_BYTES = 16 * 1024**3
QA_EXTRA_TOKENS = 16  # decode budget beyond the answer's own length


def pick_device() -> torch.device:
    """CUDA when this worker has a GPU, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class _Totals:
    nll: float = 0.0
    count: int = 0

    def add(self, nll_sum: float, count: int) -> None:
        self.nll += nll_sum
        self.count += count

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.count) if self.count else float("nan")


def evaluate_hf(
    request: EvaluateRequest, progress: ProgressFn, log: LogFn
) -> EvaluateResult:
    """Measure ``request.model_path`` against ``request.reference_path``."""
    for kind, label in (
        (request.model_kind, "model"),
        (request.reference_kind, "reference"),
    ):
        if kind != "hf":
            raise BackendError(
                f"The torch evaluator measures Hugging Face directories; the "
                f"{label} is {kind!r} (GGUF models are measured by the gguf backend)."
            )
    if request.context_tokens < 8:
        raise BackendError("context_tokens must be at least 8.")
    torch.set_num_threads(max(1, request.threads))
    device = pick_device()
    validate_hf_dir(request.reference_path)
    validate_hf_dir(request.model_path)
    log(f"Evaluating on {device.type} with {torch.get_num_threads()} threads")

    progress(0.0, "eval: reference")
    reference = load_causal_lm(Path(request.reference_path), device)
    tokens = _tokenize(reference.tokenizer, request.text)
    chunks = _chunks(
        tokens, request.context_tokens, request.max_chunks, reference.tokenizer
    )
    if not chunks:
        raise BackendError(
            f"The evaluation text has {len(tokens)} tokens, fewer than one chunk of "
            f"context_tokens={request.context_tokens}; give more text or a smaller "
            "context."
        )
    first = request.context_tokens // 2
    scored = request.context_tokens - 1 - first
    head = reference.model.get_output_embeddings()  # type: ignore[operator]
    vocab = int(head.weight.shape[0])
    store_bytes = len(chunks) * scored * vocab * 4
    if store_bytes > MAX_LOGIT_STORE_BYTES:
        raise BackendError(
            f"{len(chunks)} chunks would need {store_bytes / 1e9:.1f} GB of "
            "reference log-probabilities; set max_chunks or a smaller context."
        )
    log(f"{len(tokens)} tokens -> {len(chunks)} chunks of {request.context_tokens}")

    with tempfile.TemporaryFile(prefix="quantplan-ref-logprobs-") as store:
        base = _Totals()
        ref_top1: list[np.ndarray] = []
        for i, chunk in enumerate(chunks):
            logprobs = _scored_logprobs(reference, chunk, first)
            base.add(_nll_sum(logprobs, chunk, first), scored)
            ref_top1.append(logprobs.argmax(dim=-1).cpu().numpy())
            store.write(logprobs.cpu().numpy().astype(np.float32).tobytes())
            progress(0.4 * ((i + 1) / len(chunks)), "eval: reference")
        # The reference answers the prompt/answer set too: the drop is paired.
        ref_answers = _qa_answers(reference, request.qa_pairs, log)
        del reference
        _release_memory(device)

        progress(0.4, "eval: load model")
        with _PeakRss() as rss:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            candidate = load_causal_lm(Path(request.model_path), device)
            load_time_s = time.perf_counter() - start
            log(
                f"Loaded {Path(request.model_path).name} "
                f"({candidate.quant_method or 'float'}) in {load_time_s:.1f} s"
            )
            if _tokenize(candidate.tokenizer, request.text) != tokens:
                raise BackendError(
                    "The model's tokenizer splits the text differently from the "
                    "reference's, so their outputs cannot be compared token by token."
                )
            totals = _Totals()
            kl_sum = 0.0
            agree = 0
            forward_s = 0.0
            store.seek(0)
            for i, chunk in enumerate(chunks):
                start = time.perf_counter()
                logprobs = _scored_logprobs(candidate, chunk, first)
                forward_s += time.perf_counter() - start
                ref = torch.from_numpy(
                    np.frombuffer(store.read(scored * vocab * 4), dtype=np.float32)
                    .reshape(scored, vocab)
                    .copy()
                ).to(logprobs.device)
                totals.add(_nll_sum(logprobs, chunk, first), scored)
                kl_sum += float(
                    (ref.exp() * (ref - logprobs)).sum(dim=-1).double().sum()
                )
                agree += int(
                    (logprobs.argmax(dim=-1).cpu().numpy() == ref_top1[i]).sum()
                )
                progress(0.4 + 0.4 * ((i + 1) / len(chunks)), "eval: model")
            progress(0.8, "eval: generate")
            gen_tps = _decode_tokens_per_s(
                candidate, tokens[: min(32, len(tokens))], request.generation_tokens
            )
            cand_answers = _qa_answers(candidate, request.qa_pairs, log)
            task = summarise(ref_answers, cand_answers) if request.qa_pairs else None
            if task is not None:
                task["chat_template"] = bool(
                    getattr(candidate.tokenizer, "chat_template", None)
                )
            exact = task["exact_match"] if task else None
            gpu_peak = (
                int(torch.cuda.max_memory_allocated())
                if device.type == "cuda"
                else None
            )
    n_scored = totals.count
    result = EvaluateResult(
        perplexity=totals.perplexity,
        base_perplexity=base.perplexity,
        kl_divergence=kl_sum / n_scored,
        top1_agreement=agree / n_scored,
        tokens_evaluated=n_scored,
        prompt_tokens_per_s=len(chunks) * request.context_tokens / forward_s,
        generation_tokens_per_s=gen_tps,
        peak_memory_bytes=rss.peak_bytes,
        load_time_s=load_time_s,
        gpu_peak_memory_bytes=gpu_peak,
        exact_match=exact,
        task=task,
    )
    log(
        f"ppl {result.perplexity:.3f} (reference {result.base_perplexity:.3f}), "
        f"KLD {result.kl_divergence:.5f}, top-1 {result.top1_agreement:.3f} "
        f"over {n_scored} tokens"
    )
    progress(1.0, "eval: done")
    return result


def _tokenize(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def _chunks(
    tokens: Sequence[int], n_ctx: int, max_chunks: int | None, tokenizer: Any
) -> list[torch.Tensor]:
    """Consecutive ``n_ctx``-token chunks; BOS first where the tokenizer adds one."""
    count = len(tokens) // n_ctx
    if max_chunks is not None:
        count = min(count, max_chunks)
    bos: int | None = getattr(tokenizer, "bos_token_id", None)
    add_bos = bool(getattr(tokenizer, "add_bos_token", False)) and bos is not None
    chunks = []
    for i in range(count):
        chunk = torch.tensor(tokens[i * n_ctx : (i + 1) * n_ctx], dtype=torch.long)
        if add_bos and bos is not None:
            chunk[0] = bos  # as llama.cpp's perplexity does
        chunks.append(chunk)
    return chunks


@torch.no_grad()
def _scored_logprobs(loaded: LoadedModel, chunk: torch.Tensor, first: int) -> Any:
    """float32 log-probabilities at positions ``first .. n-2`` of one chunk."""
    n = chunk.shape[0]
    out = loaded.model(
        input_ids=chunk[None].to(loaded.device),
        use_cache=False,
        logits_to_keep=n - first,
    )
    logits = out.logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1)


def _nll_sum(logprobs: torch.Tensor, chunk: torch.Tensor, first: int) -> float:
    targets = chunk[first + 1 :].to(logprobs.device)
    return float(-logprobs.gather(1, targets[:, None]).double().sum())


@torch.no_grad()
def _greedy(
    loaded: LoadedModel, prompt: Sequence[int], new_tokens: int, stop: set[int]
) -> tuple[list[int], float]:
    """Greedy decode with a KV cache; returns tokens and decode-only seconds."""
    model = loaded.model
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=loaded.device)
    out = model(input_ids=ids, use_cache=True)
    past = out.past_key_values
    token = int(out.logits[0, -1].argmax())
    generated = [token]
    start = time.perf_counter()
    while len(generated) < new_tokens and token not in stop:
        step = torch.tensor([[token]], dtype=torch.long, device=loaded.device)
        out = model(input_ids=step, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax())
        generated.append(token)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return generated, time.perf_counter() - start


def _decode_tokens_per_s(
    loaded: LoadedModel, prompt: Sequence[int], new_tokens: int
) -> float:
    """Decode speed: tokens after the first, over the time spent producing them."""
    if new_tokens < 2 or not prompt:
        return 0.0
    generated, seconds = _greedy(loaded, prompt, new_tokens, stop=set())
    return (len(generated) - 1) / seconds if seconds > 0 else 0.0


def _stop_ids(loaded: LoadedModel) -> set[int]:
    stop: set[int] = set()
    for source in (
        getattr(loaded.model, "generation_config", None),
        loaded.tokenizer,
    ):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            stop.add(eos)
        elif isinstance(eos, list):
            stop.update(int(e) for e in eos)
    return stop


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and extra spaces (SQuAD-style normalization)."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(text.split())


def _qa_answers(
    loaded: LoadedModel, qa_pairs: Sequence[tuple[str, str]], log: LogFn
) -> list[QaAnswer]:
    """Every question's greedy answer (first non-empty line) by ``loaded``.

    Verdicts are task_quality's: exact (as written) and normalised match.
    """
    tokenizer = loaded.tokenizer
    stop = _stop_ids(loaded)
    answers = []
    for index, (question, answer) in enumerate(qa_pairs):
        prompt = _qa_prompt(tokenizer, question)
        budget = len(_tokenize(tokenizer, answer)) + QA_EXTRA_TOKENS
        generated, _ = _greedy(loaded, prompt, budget, stop)
        text = tokenizer.decode(generated, skip_special_tokens=True)
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        answers.append(QaAnswer(index, question, answer, line.strip()))
    if qa_pairs:
        hits = sum(a.normalised for a in answers)
        log(f"Normalised match {hits}/{len(qa_pairs)}")
    return answers


def _qa_prompt(tokenizer: Any, question: str) -> list[int]:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one
        template = template.get("default") or next(iter(template.values()), None)
    if isinstance(template, str) and template:
        # The template is the model author's code: rendered only in a limited
        # child process (never by transformers in this one), then tokenized here.
        from quantjobs.backends.template_sandbox import render_chat_template

        special = {
            name: str(getattr(tokenizer, name, None) or "")
            for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        }
        text = render_chat_template(
            template,
            [{"role": "user", "content": question}],
            add_generation_prompt=True,
            special_tokens=special,
        )
        ids: list[int] = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids
    return _tokenize(tokenizer, question + "\n")


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _PeakRss:
    """Samples this process's RSS every few ms; ``peak_bytes`` is the maximum seen.

    ``ru_maxrss`` cannot be reset, and it would include the reference model that
    ran first; sampling measures the candidate's phase alone.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = 0

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, int(self._process.memory_info().rss))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def __enter__(self) -> _PeakRss:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
