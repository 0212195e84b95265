"""Render an untrusted chat template in a separate, limited process.

A chat template comes with the model (an uploaded archive, a Hugging Face repo,
a GGUF's metadata): it is a Jinja program written by a stranger. Jinja's sandbox
stops it reaching Python internals, but not from building a 300 MB string or
looping for minutes. So it is rendered here, in a child process with an address
space limit, a CPU-time limit and a wall-clock timeout, and its output is capped.

Run as ``python -m quantjobs.backends.template_sandbox`` with a JSON request on
stdin; it prints one JSON line, ``{"ok": true, "text": ...}`` or
``{"ok": false, "message": ...}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from quantjobs.backends.base import BackendError

MEMORY_BYTES = 256 * 1024**2
CPU_S = 5
TIMEOUT_S = 15.0
MAX_OUTPUT_CHARS = 1_000_000


def render_chat_template(
    template: str,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    special_tokens: dict[str, str] | None = None,
) -> str:
    """The template rendered for ``messages``; BackendError if it misbehaves."""
    request = {
        "template": template,
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "special_tokens": special_tokens or {},
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quantjobs.backends.template_sandbox"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackendError(
            f"The model's chat template took longer than {TIMEOUT_S:.0f} s to render; "
            "fix or remove the template (chat_template in tokenizer_config.json)."
        ) from None
    lines = done.stdout.strip().splitlines()
    try:
        verdict: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    if verdict.get("ok") and isinstance(verdict.get("text"), str):
        return str(verdict["text"])
    message = verdict.get("message") or (
        f"rendering stopped (exit code {done.returncode}), most likely at its "
        "memory or CPU-time limit"
    )
    raise BackendError(
        f"The model's chat template could not be rendered safely: {message}. Fix or "
        "remove the template (chat_template in tokenizer_config.json)."
    )


def _limit_resources() -> None:
    import resource

    for limit, value in (
        (resource.RLIMIT_AS, MEMORY_BYTES),
        (resource.RLIMIT_CPU, CPU_S),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _render(request: dict[str, Any]) -> str:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda value, **_: json.dumps(value)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: ""
    compiled = env.from_string(str(request["template"]))
    text = compiled.render(
        messages=request["messages"],
        add_generation_prompt=bool(request.get("add_generation_prompt")),
        **dict(request.get("special_tokens") or {}),
    )
    if len(text) > MAX_OUTPUT_CHARS:
        raise ValueError(f"it produced more than {MAX_OUTPUT_CHARS} characters")
    return text


def main() -> int:
    """Entry point: limit this process, render, print one JSON line."""
    _limit_resources()
    try:
        request = json.loads(sys.stdin.read())
        text = _render(request)
    except MemoryError:
        print(json.dumps({"ok": False, "message": "it needed too much memory"}))
        return 0
    except Exception as exc:  # a template error is the template's fault
        message = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps({"ok": False, "message": message}))
        return 0
    print(json.dumps({"ok": True, "text": text}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
