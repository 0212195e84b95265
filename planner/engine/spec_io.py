"""A ``ModelSpec`` as JSON, to keep it with a job or an upload and read it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .spec import ModelSpec, SpecError

_FIELDS = {f.name: f for f in fields(ModelSpec) if f.init}
_TUPLE_FIELDS = frozenset({"sliding_layers", "moe_layers", "notes"})


def model_spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """The spec as a JSON-able dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(spec, name)
        if name == "stored_tensors":
            value = [list(t) for t in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def model_spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Read back what ``model_spec_to_dict`` wrote; SpecError if it is not that."""
    if not isinstance(data, Mapping):
        raise SpecError("stored model spec: expected an object")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _FIELDS:
            continue  # written by another version: ignore what we do not know
        if name == "stored_tensors":
            value = tuple((str(n), str(t), int(b)) for n, t, b in value)
        elif name in _TUPLE_FIELDS:
            value = tuple(value)
        kwargs[name] = value
    try:
        return ModelSpec(**kwargs)
    except TypeError as exc:
        raise SpecError(f"stored model spec: {exc}") from None
