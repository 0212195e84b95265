"""Check a live API response against the OpenAPI schema the server publishes.

The schema is OpenAPI 3.0 (``nullable``); :func:`json_schema_of` turns it into JSON
Schema for ``jsonschema``, and closes every object that lists its properties
(``additionalProperties: false``): a field the server sends but the schema does not
name is an error, as is a missing required field or a value of the wrong type.
"""

from __future__ import annotations

from typing import Any

import jsonschema

SCHEMA_URL = "/api/schema/?format=json"


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 schema object → JSON Schema (draft 2020-12), recursively."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _convert(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(sub) for sub in value]
        else:
            out[key] = value
    # Documentation keywords of OpenAPI that JSON Schema does not know.
    for key in ("example", "readOnly", "writeOnly", "discriminator", "xml"):
        out.pop(key, None)
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if out.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    if ("properties" in out or out.get("type") == "object") and (
        "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str) and not any(
            k in out for k in ("$ref", "allOf", "oneOf", "anyOf")
        ):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def json_schema_of(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A response's schema as a standalone JSON Schema (the components alongside)."""
    schemas = openapi.get("components", {}).get("schemas", {})
    components = {"schemas": {k: _convert(v) for k, v in schemas.items()}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [_convert(schema)],
        "components": components,
    }


def operation_of(openapi: dict[str, Any], method: str, url: str) -> tuple[str, Any]:
    """The schema's path template that ``url`` matches, and its operation."""
    parts = url.split("?", 1)[0].split("/")
    for template, operations in openapi["paths"].items():
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(
            p == u or (p.startswith("{") and p.endswith("}") and u)
            for p, u in zip(pattern, parts, strict=True)
        ):
            if method.lower() in operations:
                return template, operations[method.lower()]
    raise AssertionError(f"{method} {url} is not an operation of the schema")


def problems(
    openapi: dict[str, Any], method: str, url: str, response: Any
) -> tuple[str, list[str]]:
    """``(operation label, what is wrong)``: the status is documented, and the JSON
    body conforms to the documented schema of that status."""
    template, operation = operation_of(openapi, method, url)
    label = f"{method.upper()} {template}"
    documented = operation.get("responses", {})
    status = str(response.status_code)
    if status not in documented:
        return label, [f"{label}: status {status} is not documented"]
    content = documented[status].get("content") or {}
    if response.status_code == 204 or not content:
        body = response.content
        return label, [f"{label}: {status} has a body {body[:80]!r}"] if body else []
    schema = (content.get("application/json") or {}).get("schema")
    if schema is None:
        return label, [f"{label}: {status} documents no JSON body"]
    validator = jsonschema.Draft202012Validator(json_schema_of(openapi, schema))
    return label, [
        f"{label} -> {status}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: "
        f"{e.message[:300]}"
        for e in validator.iter_errors(response.json())
    ]


def json_operations(openapi: dict[str, Any]) -> set[str]:
    """Every operation with a documented JSON success body, as 'METHOD /path'."""
    labels = set()
    for template, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and "application/json" in (
                    response.get("content") or {}
                ):
                    labels.add(f"{method.upper()} {template}")
    return labels
