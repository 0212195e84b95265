"""planner.hub: repo id validation and the offline message."""

from __future__ import annotations

import pytest

from planner.hub import OFFLINE_MESSAGE, HubError, fetch_config, validate_hf_id


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "a--b",
        "a..b",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "foo.git",
        "a" * 97,
        "x/y/z",
        "rm -rf",
        "a;b",
        "a|b",
        "$(x)",
        "a`b`",
        "",
        "   ",
        "ünïcode/model",
        "org/-name",
        "org/name/",
    ],
)
def test_it_rejects_ids_huggingface_would_reject_or_that_are_unsafe(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_hf_id(bad)


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        (" Qwen/Qwen2.5-7B-Instruct ", "Qwen/Qwen2.5-7B-Instruct"),
        ("gpt2", "gpt2"),
        ("a" * 96, "a" * 96),
        (
            "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
    ],
)
def test_it_accepts_valid_ids(text: str, clean: str) -> None:
    assert validate_hf_id(text) == clean


def test_offline_fetch_says_to_paste_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(HubError) as err:
        fetch_config("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert str(err.value) == OFFLINE_MESSAGE


def test_a_bad_id_is_refused_before_any_network_call() -> None:
    with pytest.raises(ValueError):
        fetch_config("../../etc/passwd")


def test_a_bad_revision_is_refused() -> None:
    with pytest.raises(ValueError, match="revision"):
        fetch_config("gpt2", revision="main; rm -rf /")
