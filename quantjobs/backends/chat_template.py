"""Render a model's chat template for prompt/answer questions, in a sandbox.

An instruct model answers a bare question badly: it expects its chat format. The
template is Jinja text read from the model file, and a model file may be
hostile, so it is rendered in a separate process with Jinja's immutable sandbox
(no attribute access to Python internals), a CPU-time limit, an address-space
limit and a wall-clock timeout. Anything that goes wrong is a
:class:`BackendError` that says how to go on without the template.

Run as ``python -m quantjobs.backends.chat_template`` with a JSON request on
stdin; prints a JSON list of rendered prompts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantjobs.backends.base import BackendError

__all__ = ["MAX_TEMPLATE_CHARS", "render_chat_prompts"]

MAX_TEMPLATE_CHARS = 64_000
MAX_RENDERED_CHARS = 64_000
CPU_LIMIT_S = 10
MEMORY_LIMIT_BYTES = 1 << 30
TIMEOUT_S = 30.0

_HOW_TO_SKIP = 'set the job option chat_template to "off" to send the bare prompts'


def render_chat_prompts(
    template: str,
    questions: Sequence[str],
    *,
    bos_token: str = "",
    eos_token: str = "",
    timeout_s: float = TIMEOUT_S,
) -> list[str]:
    """Each question as the single user message of a chat, with the generation prompt."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise BackendError(
            f"The model's chat template is {len(template):,} characters long (limit "
            f"{MAX_TEMPLATE_CHARS:,}); {_HOW_TO_SKIP}."
        )
    payload = json.dumps(
        {
            "template": template,
            "questions": list(questions),
            "bos_token": bos_token,
            "eos_token": eos_token,
        }
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quantjobs.backends.chat_template"],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=str(Path(__file__).resolve().parents[2]),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"The model's chat template took more than {timeout_s:.0f} s to render; "
            f"{_HOW_TO_SKIP}."
        ) from None
    try:
        answer: Any = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict):
        raise BackendError(
            "The model's chat template could not be rendered (its process ended "
            f"with code {done.returncode}: too much time or memory); {_HOW_TO_SKIP}."
        )
    if "error" in answer:
        raise BackendError(
            f"The model's chat template could not be rendered ({answer['error']}); "
            f"{_HOW_TO_SKIP}."
        )
    prompts = answer.get("prompts")
    if not isinstance(prompts, list) or len(prompts) != len(questions):
        raise BackendError(
            f"The model's chat template gave no prompts; {_HOW_TO_SKIP}."
        )
    return [str(p) for p in prompts]


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _render(request: dict[str, Any]) -> list[str]:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(str(message)[:300])

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(str(request["template"]))
    prompts = []
    for question in request["questions"]:
        text = compiled.render(
            messages=[{"role": "user", "content": str(question)}],
            add_generation_prompt=True,
            bos_token=str(request.get("bos_token", "")),
            eos_token=str(request.get("eos_token", "")),
        )
        if len(text) > MAX_RENDERED_CHARS:
            raise ValueError(f"a rendered prompt is longer than {MAX_RENDERED_CHARS:,}")
        prompts.append(text)
    return prompts


def main() -> int:
    """Read the request on stdin, print {"prompts": [...]} or {"error": ...}."""
    if sys.platform.startswith("linux"):
        _limit_resources()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        request = json.loads(sys.stdin.read())
        out.write(json.dumps({"prompts": _render(request)}) + "\n")
    except MemoryError:
        out.write(json.dumps({"error": "it needs too much memory"}) + "\n")
    except Exception as exc:  # the template's own error, shown to the user
        message = f"{type(exc).__name__}: {exc}"[:400]
        out.write(json.dumps({"error": message}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
