"""OpenAPI: the error responses every operation can give, added by rule.

drf-spectacular documents what a view returns on success; the errors the framework
adds on its own (a bad token, an unknown id, invalid input) are the same for every
view, so they are documented here once: 400 and 401 everywhere (400 lists the fields
to change where there is a body or a query), 404 where the path has an id. Errors
only some views raise (429, 503, 409, 413, 416) are declared with ``extend_schema``
on those views.

Also here: the helpers that document the engine's answers from its dataclasses
(:func:`dataclass_serializer`) and stored JSON passed through as it is
(:func:`stored_json`), so that no answer is a free-form object where its fields
are known (``tests/test_api_response_schema.py`` checks live answers).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ERROR_REF = {"$ref": "#/components/schemas/ErrorOutput"}
PAGINATION_PARAMS = frozenset({"limit", "offset"})


class ErrorOutput(serializers.Serializer[Any]):
    """An error: what went wrong and what to change, with a machine-readable code."""

    detail = serializers.CharField()
    code = serializers.CharField()


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: document 400, 401 and 404 by rule."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "ErrorOutput",
        {
            "type": "object",
            "description": ErrorOutput.__doc__,
            "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
            "required": ["detail"],
        },
    )
    schemas.setdefault(
        "ValidationErrorOutput",
        {
            "type": "object",
            "description": "Field name → list of messages; `detail` (with `code`) "
            "for an error that belongs to no one field.",
            "additionalProperties": {},
        },
    )
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            queries = {
                p["name"]
                for p in operation.get("parameters", [])
                if p.get("in") == "query"
            }
            if "requestBody" in operation or queries - PAGINATION_PARAMS:
                responses.setdefault(
                    "400",
                    _json(
                        {"$ref": "#/components/schemas/ValidationErrorOutput"},
                        "Invalid input; the body says which field to change.",
                    ),
                )
            else:  # Django refuses a malformed request (a bad Host header) anywhere
                responses.setdefault(
                    "400", _json(ERROR_REF, "Malformed request, such as a bad Host.")
                )
            responses.setdefault(
                "401",
                _json(
                    ERROR_REF,
                    "Missing, invalid or revoked token (Authorization: Bearer …).",
                ),
            )
            if "{" in path:
                responses.setdefault(
                    "404",
                    _json(
                        ERROR_REF,
                        "No such object among yours (another user's is 404 too).",
                    ),
                )
    return result


# --- Response shapes derived from the engine's dataclasses ---------------------------
# The engine answers in dataclasses and their ``to_dict()``; the API documents those
# answers by reading the same dataclasses (fields and type hints), so a field added
# to the engine appears in the schema without a second list to keep in step.

_DERIVED: dict[type, type[serializers.Serializer[Any]]] = {}


def dataclass_serializer(
    cls: type,
    *,
    name: str | None = None,
    doc: str | None = None,
    fields: dict[str, serializers.Field[Any, Any, Any, Any]] | None = None,
    extra: dict[str, serializers.Field[Any, Any, Any, Any]] | None = None,
    exclude: tuple[str, ...] = (),
    nonfinite_as_null: bool = False,
    keys_optional: bool = False,
) -> type[serializers.Serializer[Any]]:
    """An output serializer (for the schema) of a dataclass's ``to_dict()``.

    ``fields`` replaces the field derived for a name (a ``dict[str, Any]`` whose keys
    are known elsewhere), ``extra`` adds what ``to_dict()`` adds beyond the fields,
    ``exclude`` leaves out what it leaves out; ``keys_optional`` documents stored
    JSON that may lack keys; ``nonfinite_as_null`` makes every float nullable, for a
    ``to_dict()`` that writes an infinite or NaN float as null. One serializer per
    dataclass: the first call's options hold wherever that dataclass is met again.
    """
    if cls in _DERIVED:
        return _DERIVED[cls]
    hints = typing.get_type_hints(cls)
    attrs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if fields and f.name in fields:
            attrs[f.name] = fields[f.name]
        else:
            attrs[f.name] = _field_for(hints[f.name], nonfinite_as_null)
        if keys_optional:
            attrs[f.name].required = False
    attrs.update(extra or {})
    attrs["__doc__"] = doc or cls.__doc__
    attrs["__module__"] = __name__
    serializer = type(name or f"{cls.__name__}Output", (serializers.Serializer,), attrs)
    _DERIVED[cls] = serializer
    return serializer


def _field_for(
    hint: Any, nonfinite_as_null: bool, *, nullable: bool = False
) -> serializers.Field[Any, Any, Any, Any]:
    """The DRF field for one type hint (its schema is what drf-spectacular shows)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        nullable = nullable or len(kinds) < len(args)
        if len(kinds) == 1:
            return _field_for(kinds[0], nonfinite_as_null, nullable=nullable)
        if set(kinds) <= {int, float}:
            return _field_for(float, nonfinite_as_null, nullable=nullable)
        return serializers.JSONField(allow_null=nullable)
    if hint is bool:
        return serializers.BooleanField(allow_null=nullable)
    if hint is int:
        return serializers.IntegerField(allow_null=nullable)
    if hint is float:
        return serializers.FloatField(allow_null=nullable or nonfinite_as_null)
    if hint is str:
        return serializers.CharField(allow_null=nullable, allow_blank=True)
    if origin in (list, tuple, collections.abc.Sequence) and args:
        return serializers.ListField(
            child=_field_for(args[0], nonfinite_as_null), allow_null=nullable
        )
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        if args[1] in (Any, object):
            return serializers.DictField(allow_null=nullable)
        return serializers.DictField(
            child=_field_for(args[1], nonfinite_as_null), allow_null=nullable
        )
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        # A nested dataclass answers with its own to_dict(): its own rules.
        return dataclass_serializer(hint)(allow_null=nullable)
    if isinstance(hint, type) and typing.is_typeddict(hint):
        return typed_dict_serializer(hint)(allow_null=nullable)
    return serializers.JSONField(allow_null=nullable)


def typed_dict_serializer(
    cls: type, *, name: str | None = None
) -> type[serializers.Serializer[Any]]:
    """An output serializer of a ``TypedDict`` (its keys that are not required are
    not required in the schema either)."""
    if cls in _DERIVED:
        return _DERIVED[cls]
    hints = typing.get_type_hints(cls)
    optional: frozenset[str] = getattr(cls, "__optional_keys__", frozenset())
    attrs: dict[str, Any] = {}
    for key, hint in hints.items():
        field = _field_for(hint, False)
        field.required = key not in optional
        attrs[key] = field
    attrs["__doc__"] = cls.__doc__
    attrs["__module__"] = __name__
    serializer = type(name or f"{cls.__name__}Output", (serializers.Serializer,), attrs)
    _DERIVED[cls] = serializer
    return serializer


def stored_json(
    serializer: type[serializers.Serializer[Any]], **kwargs: Any
) -> serializers.JSONField:
    """A field that passes stored JSON through unchanged (it never drops or demands
    a key, whatever version wrote it) and is documented as ``serializer``.

    Not ``read_only``: drf-spectacular marks every read-only field required, and a
    stored key may be optional (``required=False``). It only ever serializes.
    """
    field_class = extend_schema_field(serializer)(
        type(f"{serializer.__name__}JSONField", (serializers.JSONField,), {})
    )
    field: serializers.JSONField = field_class(**kwargs)
    return field
