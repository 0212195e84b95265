"""The model's chat template, rendered in a sandboxed process with limits."""

from __future__ import annotations

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.chat_template import render_chat_prompts
from quantjobs.backends.gguf.session import LlamaSession
from quantjobs.samples import sample_path


def test_the_samples_own_template_makes_a_chat_prompt() -> None:
    with LlamaSession(
        sample_path("smollm2-135m-instruct-q4_1"), n_ctx=64, vocab_only=True
    ) as vocab:
        template = vocab.chat_template()
    assert template
    (prompt,) = render_chat_prompts(template, ["What is the capital of France?"])
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # Python internals are out of the sandbox's reach.
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "could not be rendered"),
        ("{{ raise_exception('no system role') }}", "no system role"),
        ("{% for m in messages %}{{ m.content ", "could not be rendered"),
        # A template that never ends, or that eats memory, is stopped.
        (
            "{% for i in range(10**9) %}{% for j in range(10**9) %}{% endfor %}"
            "{% endfor %}",
            "could not be rendered|took more than",
        ),
        ("{{ 'x' * 10**10 }}", "could not be rendered"),
    ],
)
def test_a_hostile_or_broken_template_is_refused_with_a_way_out(
    template: str, reason: str
) -> None:
    with pytest.raises(BackendError, match=reason) as caught:
        render_chat_prompts(template, ["q"], timeout_s=20)
    assert 'chat_template to "off"' in str(caught.value)
