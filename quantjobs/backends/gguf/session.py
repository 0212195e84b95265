"""A GGUF model and its context through llama.cpp's C API, and llama.cpp's log.

Used by the evaluator (``quantjobs.backends.llama_eval``), the importance-matrix
collector and the quantizer. The C API (llama-cpp-python's ctypes bindings) is
used rather than ``llama_cpp.Llama``: the high-level class compiles the file's
chat template at load time, and we want the logits of chosen positions only and
an eval callback.
"""

from __future__ import annotations

import collections
import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantjobs.backends.base import BackendError

__all__ = ["LlamaLogs", "LlamaSession"]

_GGML_LOG_INFO = 2
_GGML_LOG_WARN = 3
_GGML_LOG_ERROR = 4
_GGML_LOG_CONT = 5


class LlamaLogs:
    """Keeps llama.cpp's recent warnings and errors, to explain its failures.

    llama.cpp reports why a load or a quantization failed only through its log
    (the C API returns NULL or 1); the last lines are what the user needs to see.
    """

    _installed: LlamaLogs | None = None
    _lock = threading.Lock()

    def __init__(self, max_lines: int = 200) -> None:
        # (sequence number, level, line): marks are sequence numbers, so they
        # stay valid after the oldest lines fall out of the bounded buffer.
        self.entries: collections.deque[tuple[int, int, str]] = collections.deque(
            maxlen=max_lines
        )
        self._seq = 0
        self._partial = ""
        self._level = 0
        self._callback: Any = None
        # Sees every info line while set (the quantizer's per-tensor progress).
        self.on_info: Callable[[str], None] | None = None

    @classmethod
    def install(cls) -> LlamaLogs:
        """The process-wide capture, installed into llama.cpp on first use."""
        with cls._lock:
            if cls._installed is None:
                import llama_cpp

                logs = cls()

                def on_log(level: int, text: bytes | None, _user: Any) -> None:
                    logs._on_log(level, text)

                # Keep the ctypes callback alive as long as llama.cpp may call it.
                logs._callback = llama_cpp.llama_log_callback(on_log)
                llama_cpp.llama_log_set(logs._callback, ctypes.c_void_p(0))
                cls._installed = logs
            return cls._installed

    def _on_log(self, level: int, text: bytes | None) -> None:
        if not text:
            return
        chunk = text.decode("utf-8", errors="replace")
        if level == _GGML_LOG_INFO and self.on_info is not None:
            self.on_info(chunk)
        if level == _GGML_LOG_CONT:
            self._partial += chunk
        elif level >= _GGML_LOG_WARN:
            self._partial, self._level = chunk, level
        else:
            self._partial = ""
            return
        if self._partial.endswith("\n"):
            # One message may hold several lines (llama.cpp's boxed errors).
            for raw in self._partial.splitlines():
                line = raw.strip()
                if line and not set(line) <= {"=", "-", " "}:
                    self.entries.append((self._seq, self._level, line))
                    self._seq += 1
            self._partial = ""

    def mark(self) -> int:
        """A position to collect the lines logged after it."""
        return self._seq

    def _since(self, mark: int) -> list[tuple[int, str]]:
        return [(level, line) for seq, level, line in self.entries if seq >= mark]

    def since(self, mark: int) -> list[str]:
        """Warning and error lines logged since ``mark`` (the last ``max_lines``)."""
        return [line for _, line in self._since(mark)]

    def reason(self, mark: int, default: str = "no reason given") -> str:
        """The most telling error lines logged since ``mark``."""
        entries = self._since(mark)
        errors = [line for level, line in entries if level >= _GGML_LOG_ERROR]
        # The first error is usually the specific one ("invalid magic"), the
        # last the summary ("failed to quantize: ..."): keep both.
        if errors:
            picked = list(dict.fromkeys([errors[0], errors[-1]]))
        else:
            picked = [line for _, line in entries[-2:]]
        return "; ".join(picked)[-600:] if picked else default


class LlamaSession:
    """One GGUF model and one inference context, driven through llama.cpp's C API.

    The C API, rather than ``llama_cpp.Llama``, because the high-level class
    compiles the file's chat template at load time and we want the logits of
    chosen positions only; ``cb_eval`` lets the importance-matrix collector
    observe every matrix multiplication.
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_batch: int | None = None,
        n_threads: int = 2,
        cb_eval: Any = None,
        vocab_only: bool = False,
    ) -> None:
        import llama_cpp

        self._llama = llama_cpp
        self.path = path
        self.logs = LlamaLogs.install()
        llama_cpp.llama_backend_init()
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        mark = self.logs.mark()
        t0 = time.perf_counter()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.vocab_only = vocab_only
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self._model:
            raise BackendError(
                f"llama.cpp could not load {path.name}: {self.logs.reason(mark)}"
            )
        self.vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.n_ctx = n_ctx
        self.n_batch = min(n_batch or n_ctx, n_ctx)
        self.n_threads = n_threads
        if vocab_only:  # tokenizer only: no weights, no context
            self.load_time_s = time.perf_counter() - t0
            return
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = min(512, self.n_batch)
        cparams.n_seq_max = 1
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.no_perf = True
        if cb_eval is not None:
            cparams.cb_eval = cb_eval
            cparams.cb_eval_user_data = None
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise BackendError(
                f"llama.cpp could not create a {n_ctx}-token context for {path.name}: "
                f"{self.logs.reason(mark)}"
            )
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.load_time_s = time.perf_counter() - t0

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Free the batch, context and model (idempotent)."""
        llama_cpp = self._llama
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
        self._model = None

    def __enter__(self) -> LlamaSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- text <-> tokens ---------------------------------------------------

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = False
    ) -> list[int]:
        """Tokens of ``text``; BOS added if the model asks for it and add_special.

        ``parse_special``: control tokens written as text (``<|im_start|>`` in a
        rendered chat template) become those tokens.
        """
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buf = (self._llama.llama_token * capacity)()
        n = self._llama.llama_tokenize(
            self.vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:  # cannot happen with one token per byte plus room, but be safe
            capacity = -n
            buf = (self._llama.llama_token * capacity)()
            n = self._llama.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        return list(buf[:n])

    def chat_template(self) -> str | None:
        """The model file's default chat template (Jinja text), if it has one."""
        raw = self._llama.llama_model_chat_template(self._model, None)
        if not raw:
            return None
        text = (
            raw.decode("utf-8", errors="replace")
            if isinstance(raw, bytes)
            else str(raw)
        )
        return text or None

    def token_text(self, token: int) -> str:
        """The text of one token, special tokens included (``<s>``, ``<|im_end|>``)."""
        buf = ctypes.create_string_buffer(256)
        n = self._llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(0, n)].decode("utf-8", errors="replace")

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` (special tokens left out)."""
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for token in tokens:
            n = self._llama.llama_token_to_piece(
                self.vocab, token, buf, len(buf), 0, False
            )
            if n > 0:
                out += buf.raw[:n]
        return out.decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT...)."""
        return bool(self._llama.llama_vocab_is_eog(self.vocab, token))

    # -- decoding ----------------------------------------------------------

    def clear(self) -> None:
        """Forget everything decoded so far (clear the KV cache)."""
        self._llama.llama_memory_clear(self._llama.llama_get_memory(self._ctx), True)

    def decode(
        self,
        tokens: Sequence[int],
        *,
        start_pos: int = 0,
        logits_from: int | None = None,
        keep_logits: bool = True,
    ) -> npt.NDArray[np.float32]:
        """Decode ``tokens`` at positions ``start_pos...``; logits of positions >= logits_from.

        Returns an array (n_outputs, n_vocab); with ``logits_from=None`` only the
        last position's logits are returned. ``keep_logits=False`` computes the
        outputs (so every layer runs on every requested position) but copies
        nothing out.
        """
        llama_cpp = self._llama
        n_total = len(tokens)
        if start_pos + n_total > self.n_ctx:
            raise BackendError(
                f"Cannot decode {n_total} tokens at position {start_pos} in a "
                f"{self.n_ctx}-token context."
            )
        want_from = start_pos + n_total - 1 if logits_from is None else logits_from
        outputs: list[npt.NDArray[np.float32]] = []
        batch = self._batch
        for begin in range(0, n_total, self.n_batch):
            part = tokens[begin : begin + self.n_batch]
            n_out = 0
            for i, token in enumerate(part):
                pos = start_pos + begin + i
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                wanted = pos >= want_from
                batch.logits[i] = wanted
                n_out += wanted
            batch.n_tokens = len(part)
            rc = llama_cpp.llama_decode(self._ctx, batch)
            if rc != 0:
                raise BackendError(
                    f"llama.cpp failed to decode a batch of {len(part)} tokens "
                    f"(code {rc}) with {self.path.name}."
                )
            if n_out and keep_logits:
                ptr = llama_cpp.llama_get_logits(self._ctx)
                arr = np.ctypeslib.as_array(ptr, shape=(n_out * self.n_vocab,))
                outputs.append(arr.reshape(n_out, self.n_vocab).copy())
        if not outputs:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def generate_greedy(
        self,
        prompt: Sequence[int],
        max_tokens: int,
        *,
        stop: Callable[[list[int]], bool] | None = None,
    ) -> tuple[list[int], float, float]:
        """Greedy continuation of ``prompt``; returns (tokens, prefill_s, decode_s)."""
        if len(prompt) + max_tokens > self.n_ctx:
            raise BackendError(
                f"A {len(prompt)}-token prompt plus {max_tokens} generated tokens "
                f"does not fit the {self.n_ctx}-token context."
            )
        self.clear()
        t0 = time.perf_counter()
        logits = self.decode(prompt)
        prefill_s = time.perf_counter() - t0
        generated: list[int] = []
        pos = len(prompt)
        t1 = time.perf_counter()
        for _ in range(max_tokens):
            token = int(np.argmax(logits[-1]))
            generated.append(token)
            if self.is_eog(token) or (stop is not None and stop(generated)):
                break
            logits = self.decode([token], start_pos=pos)
            pos += 1
        return generated, prefill_s, time.perf_counter() - t1
