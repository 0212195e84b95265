"""Hostile Hugging Face ids are refused with a message; no user text reaches a shell.

Every id below is refused before anything is queued or fetched: the jobs API answers
400 on ``source_ref`` and the plans API 400 on ``model``. The second half reads the
code base itself: no ``shell=True``, ``os.system``, ``os.popen`` or other
shell-spawning call exists outside the tests, so no text a user typed is ever
interpreted by a shell.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tests import reliability

SECTION = "Hostile identifiers"
ROOT = Path(__file__).resolve().parents[2]

HOSTILE_IDS: dict[str, str] = {
    "parent directory": "../x",
    "parent directory, namespaced": "org/../x",
    "absolute path": "/etc/passwd",
    "double dash": "a--b",
    "double dash, namespaced": "org/a--b",
    "dot git": "foo.git",
    "dot git, namespaced": "org/foo.git",
    "97 characters": "a" * 97,
    "97-character name": "org/" + "b" * 97,
    "shell command": ";rm -rf /",
    "command substitution": "$(id)",
    "command substitution, namespaced": "org/$(id)",
    "backticks": "org/`id`",
    "pipe": "org/name|id",
    "three parts": "a/b/c",
    "empty": "",
    "only spaces": "   ",
    "cyrillic homoglyph": "meta-llam\u0430/Llama-3.1-8B",
    "fullwidth homoglyph": "org/\uff4dodel",
    "newline": "org/name\nX-Injected: 1",
    "carriage return": "org/name\r\nHost: evil",
    "nul byte": "org/na\x00me",
    "leading dash (option injection)": "--upload-pack=touch /tmp/pwned",
    "leading dash, namespaced": "org/-rf",
    "url of another host": "https://evil.example/org/name",
    "percent-encoded traversal": "org/%2e%2e",
    "trailing dot": "org/name.",
    "spaces inside": "org/my model",
}
CASES = list(HOSTILE_IDS.items())
IDS = list(HOSTILE_IDS)


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach Hugging Face; offline, a fetch fails at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "hf_id"), CASES, ids=IDS)
def test_jobs_api_refuses_a_hostile_hugging_face_id(
    label: str, hf_id: str, api: Any, user: Any
) -> None:
    from quantjobs.models import Job

    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q4_K_M"],
            "source_kind": "hf",
            "source_ref": hf_id,
        },
        format="json",
    )

    assert response.status_code == 400, (hf_id, response.status_code, response.content)
    message = " ".join(response.json()["source_ref"])
    assert len(message) > 15, message
    assert not Job.objects.filter(user=user).exists()
    reliability.add(SECTION, "refused by the jobs API (400)")


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "hf_id"), CASES, ids=IDS)
def test_plans_api_refuses_a_hostile_model_id(label: str, hf_id: str, api: Any) -> None:
    response = api.post("/api/v1/plans/", {"model": hf_id, "gpu": "l4"}, format="json")

    assert response.status_code == 400, (hf_id, response.status_code, response.content)
    message = " ".join(response.json()["model"])
    assert len(message) > 15, message
    reliability.add(SECTION, "refused by the plans API (400)")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "label", ["parent directory", "shell command", "newline", "cyrillic homoglyph"]
)
def test_the_job_form_refuses_a_hostile_hugging_face_id(label: str, user: Any) -> None:
    from django.test import Client

    from quantjobs.models import Job

    client = Client()
    client.force_login(user)
    response = client.post(
        "/jobs/new/",
        {
            "method": "gguf",
            "formats": "gguf-Q4_K_M",
            "source_kind": "hf",
            "source_ref": HOSTILE_IDS[label],
        },
    )
    assert response.status_code == 200  # the form again, with the message
    assert "model id" in response.content.decode()
    assert not Job.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_a_json_path_as_model_reads_no_server_file(api: Any, tmp_path: Path) -> None:
    """A path named as the model is not opened: the server's files are not an oracle."""
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama", "hidden_size": 64}')
    present = api.post(
        "/api/v1/plans/", {"model": str(config), "gpu": "l4"}, format="json"
    )
    absent = api.post(
        "/api/v1/plans/",
        {"model": str(tmp_path / "no.json"), "gpu": "l4"},
        format="json",
    )
    assert present.status_code == absent.status_code == 400
    assert "config" not in present.json()
    assert present.json()["model"] == [
        m.replace(str(tmp_path / "no.json"), str(config))
        for m in absent.json()["model"]
    ]


# --- No shell anywhere ---------------------------------------------------------

SKIP_DIRS = {
    ".venv",
    "venv",
    ".git",
    "node_modules",
    "var",
    "tests",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "test-output",
}
SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
    ("os", "execlp"),
    ("os", "spawnlp"),
}
SHELL_WORDS = (
    "shell=True",
    "os.system(",
    "os.popen(",
    "getoutput(",
    "getstatusoutput(",
    "create_subprocess_shell(",
)


def python_files() -> list[Path]:
    """The project's own Python files (not the tests, not installed packages)."""
    files = []
    for path in ROOT.rglob("*.py"):
        parts = set(path.relative_to(ROOT).parts[:-1])
        if not parts & SKIP_DIRS and not any(p.startswith(".") for p in parts):
            files.append(path)
    return sorted(files)


def _shell_uses(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(text)
    except SyntaxError:  # cannot parse it: fall back to the words
        return [w for w in SHELL_WORDS if w in text]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            is_false = (
                isinstance(keyword.value, ast.Constant) and not keyword.value.value
            )
            if keyword.arg == "shell" and not is_false:
                found.append(f"line {node.lineno}: shell={ast.unparse(keyword.value)}")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) in SHELL_CALLS:
                found.append(f"line {node.lineno}: {func.value.id}.{func.attr}(...)")
    for node in ast.walk(tree):  # from os import system; system(...)
        if isinstance(node, ast.ImportFrom) and node.module in {
            "os",
            "subprocess",
            "asyncio",
        }:
            for alias in node.names:
                if (node.module, alias.name) in SHELL_CALLS:
                    found.append(
                        f"line {node.lineno}: from {node.module} import {alias.name}"
                    )
    return found


def test_no_python_file_outside_the_tests_starts_a_shell() -> None:
    files = python_files()
    assert len(files) > 50, "the walk found too few files; is ROOT right?"
    assert any(p.name == "runner.py" for p in files)
    offenders = {
        str(p.relative_to(ROOT)): uses for p in files if (uses := _shell_uses(p))
    }
    assert not offenders, f"user text must never reach a shell: {offenders}"
    reliability.record(SECTION, "project Python files checked for shells", len(files))
    reliability.record(SECTION, "shell=True / os.system / os.popen found", 0)


def test_the_shell_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The detector itself: each form it must catch is caught; a safe call is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, subprocess\nfrom os import popen\n"
        "subprocess.run('ls', shell=True)\nsubprocess.run(['ls'], shell=flag)\n"
        "os.system('id')\nos.popen('id')\nsubprocess.getoutput('id')\n"
        "subprocess.run(['ls'], shell=False)\n"
    )
    found = _shell_uses(sample)
    assert len(found) == 6, found
    assert not any("shell=False" in f for f in found)
