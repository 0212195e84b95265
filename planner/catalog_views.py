"""Catalog lists as JSON-ready dicts, shared by the API and ``manage.py catalog``."""

from __future__ import annotations

from typing import Any

from planner import engine

KINDS = ("models", "gpus", "formats", "api-prices")


def catalog_list(kind: str) -> list[dict[str, Any]]:
    """Every entry of one catalog, each with its ``id``."""
    if kind == "models":
        return [entry.to_dict() for entry in engine.catalog.load_models()]
    if kind == "gpus":
        return [gpu.to_dict() for gpu in engine.catalog.load_gpus()]
    if kind == "formats":
        return [fmt.to_dict() for fmt in engine.list_formats()]
    if kind == "api-prices":
        return [price.to_dict() for price in engine.catalog.load_api_prices()]
    raise ValueError(f"Unknown catalog {kind!r}; choose one of: {', '.join(KINDS)}.")
