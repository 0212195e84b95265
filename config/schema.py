"""OpenAPI: the error responses every operation can give, added by rule.

drf-spectacular documents what a view returns on success; the errors the framework
adds on its own (a bad token, an unknown id, invalid input) are the same for every
view, so they are documented here once: 400 and 401 everywhere (400 lists the fields
to change where there is a body or a query), 404 where the path has an id. Errors
only some views raise (429, 503, 409, 413, 416) are declared with ``extend_schema``
on those views.
"""

from __future__ import annotations

from typing import Any

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
