"""Chat templates are a stranger's code: rendered only in a limited child process."""

from __future__ import annotations

import time

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.template_sandbox import render_chat_template
from tests import reliability

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_normal_template_renders_like_transformers_would() -> None:
    text = render_chat_template(
        CHATML, [{"role": "user", "content": "Capital of France?"}]
    )
    assert text == (
        "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_template_building_a_300_mb_string_fails_cleanly() -> None:
    started = time.monotonic()
    with pytest.raises(BackendError, match="too much memory"):
        render_chat_template("{{ 'x' * 300000000 }}", [])
    with pytest.raises(BackendError, match="chat template"):
        render_chat_template(
            "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{{ 'xxxxxxxxxx' }}{% endfor %}{% endfor %}",
            [],
        )
    took_s = time.monotonic() - started
    assert took_s < 30
    reliability.record(
        "Hostile files",
        "chat template building 300 MB: refused in (s)",
        round(took_s, 1),
    )


def test_a_template_that_loops_forever_is_stopped() -> None:
    with pytest.raises(BackendError, match="chat template"):
        render_chat_template(
            "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{% endfor %}{% endfor %}",
            [],
        )


def test_a_template_reaching_python_internals_is_refused() -> None:
    with pytest.raises(BackendError, match="chat template"):
        render_chat_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])


def test_a_template_raising_an_exception_gives_its_message() -> None:
    with pytest.raises(BackendError, match="no system role"):
        render_chat_template("{{ raise_exception('no system role') }}", [])
