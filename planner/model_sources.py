"""Models the planner plans but does not hold: a user's uploads and the files in the
server's local model folders.

They belong to the jobs app (``quantjobs``), which reads a GGUF's shape in a
sandboxed child process. The planner never imports that app: the app registers its
readers here when Django starts (``quantjobs/apps.py``), and ``planner/services.py``
calls them. Each reader raises ``ModelSourceError`` with a message that says what to
change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from planner.engine import ModelSpec

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class ModelSourceError(ValueError):
    """A model that cannot be planned; the message says what to change."""


class UploadSpecReader(Protocol):
    """The spec of one of the user's uploads, once it is checked and ready."""

    def __call__(
        self, *, user: AbstractBaseUser | None, upload_id: str
    ) -> ModelSpec: ...


@dataclass(frozen=True)
class ModelSources:
    """The readers another app provides."""

    upload_spec: UploadSpecReader
    # a path (absolute, or relative to the first local model folder) -> that path,
    # checked to lie inside the local model folders
    local_path: Callable[[str], Path]
    # a .gguf file (or the first of a split set) or a model folder -> its spec
    path_spec: Callable[[Path], ModelSpec]


_registered: list[ModelSources] = []


def model_sources_register(sources: ModelSources) -> None:
    """Install the readers (the last registration wins); called from an AppConfig."""
    _registered[:] = [sources]


def model_sources() -> ModelSources:
    """The registered readers; ModelSourceError when no app provides them."""
    if not _registered:
        raise ModelSourceError(
            "Plans from uploads and local files need the jobs app (quantjobs), which "
            "is not installed here; choose a catalog model or paste a config.json."
        )
    return _registered[0]
