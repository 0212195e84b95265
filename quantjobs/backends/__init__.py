"""Quantization backends, registered by name and imported lazily.

The web process only ever imports this module and ``base``: the registry holds
dotted paths so that torch or llama_cpp are imported in the worker's child
process alone.
"""

from __future__ import annotations

import importlib

from quantjobs.backends.base import Backend, BackendError

REGISTRY: dict[str, str] = {
    "selftest": "quantjobs.backends.selftest:SelftestBackend",
    "gguf": "quantjobs.backends.gguf:GgufBackend",
    "rtn": "quantjobs.backends.rtn:RtnBackend",
    "awq": "quantjobs.backends.awq:AwqBackend",
    "gptq": "quantjobs.backends.gptq:GptqBackend",
}


def load_backend(name: str) -> Backend:
    """Import and instantiate the backend registered under ``name``."""
    try:
        dotted = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise BackendError(
            f"Unknown method {name!r}; choose one of: {known}."
        ) from None
    module_name, _, attr = dotted.partition(":")
    module = importlib.import_module(module_name)
    backend: Backend = getattr(module, attr)()
    return backend


__all__ = ["REGISTRY", "Backend", "BackendError", "load_backend"]
