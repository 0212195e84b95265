"""Hugging Face Hub access for the planner: validate a repo id, fetch its config.json.

Only ``config.json`` is downloaded. ``huggingface_hub`` is imported lazily so that
importing this module costs nothing and works where the package is missing.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HF_NAME_MAX_LENGTH = 96  # huggingface_hub's limit for each part of a repo id
CONFIG_MAX_BYTES = 2_000_000
OFFLINE_MESSAGE = (
    "Hugging Face is not reachable from this server; paste or upload the model's "
    "config.json instead"
)

# huggingface_hub.utils._validators: alphanumerics, '-', '_', '.'; no leading or
# trailing '-' or '.'; no '--' or '..'; not ending in '.git'. ASCII only here.
_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?")
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,99}")
_URL_PREFIXES = (
    "https://huggingface.co/",
    "http://huggingface.co/",
    "huggingface.co/",
    "hf.co/",
    "https://hf.co/",
)


class HubError(RuntimeError):
    """The Hub could not give us the config; the message says what the user can do."""


def validate_hf_id(text: str) -> str:
    """Return ``text`` as a clean ``namespace/name`` repo id, or raise ValueError."""
    if not isinstance(text, str):
        raise ValueError("model id must be text such as 'meta-llama/Llama-3.1-8B'")
    value = text.strip()
    for prefix in _URL_PREFIXES:
        if value.lower().startswith(prefix):
            value = value[len(prefix) :].strip("/")
            break
    if not value:
        raise ValueError("model id is empty; give it as 'namespace/name'")
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"model id {value[:120]!r} must be 'name' or 'namespace/name'")
    for part in parts:
        if len(part) > HF_NAME_MAX_LENGTH:
            raise ValueError(
                f"model id part {part[:40]!r}... is longer than "
                f"{HF_NAME_MAX_LENGTH} characters"
            )
        if not _PART.fullmatch(part):
            raise ValueError(
                f"model id {value[:120]!r} may use only letters, digits, '-', '_' and '.', "
                "and a name cannot start or end with '-' or '.'"
            )
    if "--" in value or ".." in value:
        raise ValueError(f"model id {value[:120]!r} cannot contain '--' or '..'")
    if value.endswith(".git"):
        raise ValueError(f"model id {value[:120]!r} cannot end in '.git'")
    return value


def _validate_revision(revision: str | None) -> str | None:
    if revision is None or revision == "":
        return None
    if (
        not isinstance(revision, str)
        or not _REVISION.fullmatch(revision)
        or ".." in revision
    ):
        raise ValueError(
            "revision must be a branch, tag or commit hash "
            "(letters, digits, '-', '_', '.', '/')"
        )
    return revision


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe, so an offline server answers at once instead of retrying."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    ):
        return True  # huggingface_hub answers from its cache or raises at once
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def fetch_config(hf_id: str, revision: str | None = None) -> tuple[dict[str, Any], str]:
    """Download only ``config.json`` of ``hf_id``; return it and the resolved commit."""
    repo_id = validate_hf_id(hf_id)
    rev = _validate_revision(revision)
    if not _hub_reachable():
        raise HubError(OFFLINE_MESSAGE)
    try:
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - the stack installs it
        raise HubError(OFFLINE_MESSAGE) from exc
    try:
        path = hf_hub_download(
            repo_id=repo_id, filename="config.json", revision=rev, etag_timeout=10
        )
    except hf_errors.GatedRepoError as exc:
        raise HubError(
            f"{repo_id} is gated: accept its license on Hugging Face, or paste "
            "its config.json instead"
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise HubError(
            f"{repo_id} was not found on Hugging Face (or it is private); check "
            "the id, or paste its config.json instead"
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise HubError(
            f"{repo_id} has no revision {rev!r}; check the branch, tag or commit"
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        if isinstance(exc, hf_errors.LocalEntryNotFoundError):
            raise HubError(OFFLINE_MESSAGE) from exc
        raise HubError(
            f"{repo_id} has no config.json; is it a transformers model?"
        ) from exc
    except (hf_errors.OfflineModeIsEnabled, OSError, ValueError) as exc:
        raise HubError(OFFLINE_MESSAGE) from exc
    except Exception as exc:  # network libraries raise their own types
        if os.environ.get("HF_HUB_OFFLINE") or "connect" in type(exc).__name__.lower():
            raise HubError(OFFLINE_MESSAGE) from exc
        raise HubError(
            f"could not fetch config.json of {repo_id}: {type(exc).__name__}"
        ) from exc
    file = Path(path)
    if file.stat().st_size > CONFIG_MAX_BYTES:
        raise HubError(f"config.json of {repo_id} is implausibly large")
    from config.parsers import JsonLimitError, loads_limited

    try:
        config = loads_limited(file.read_text(encoding="utf-8"))
    except JsonLimitError as exc:  # a hostile repository's config.json
        raise HubError(f"config.json of {repo_id}: {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(f"config.json of {repo_id} is not valid JSON") from exc
    if not isinstance(config, dict):
        raise HubError(f"config.json of {repo_id} is not a JSON object")
    # hf_hub_download returns .../snapshots/<commit sha>/config.json
    resolved = (
        file.parent.name if file.parent.parent.name == "snapshots" else (rev or "main")
    )
    return config, resolved
