"""Build a valid request body for any operation from the app's own OpenAPI schema.

Used by the role matrix: a foreign role must be refused with 403/404 even when the body is valid,
so the refusal comes from the scope check and not from validation.
"""

from __future__ import annotations

from typing import Any


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][name]
    return schema


def example(spec: dict, schema: dict, ids: dict[str, Any], name: str = "") -> Any:
    if name in ids:
        return ids[name]
    schema = _resolve(spec, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(spec, s).get("type") != "null"]
            return example(spec, options[0], ids, name)
    if "allOf" in schema:
        return example(spec, schema["allOf"][0], ids, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(spec, props[k], ids, k) for k in schema.get("required", []) if k in props}
    if kind == "array":
        n = schema.get("minItems", 0)
        return [example(spec, schema.get("items", {}), ids, name) for _ in range(n)]
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "number":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-11-23T08:00:00+08:00"
        if fmt == "date":
            return "2026-11-23"
        if fmt == "time":
            return "08:00:00"
        if "phone" in name:
            return "13800001111"
        return "x" * max(schema.get("minLength", 1), 10 if "password" in name or "token" in name else 3)
    return None


def request_body(spec: dict, operation: dict, ids: dict[str, int]) -> tuple[str, Any] | None:
    body = operation.get("requestBody")
    if not body:
        return None
    content = body["content"]
    if "application/json" in content:
        return "json", example(spec, content["application/json"]["schema"], ids)
    if "multipart/form-data" in content:
        return "files", {"file": ("roster.csv", b"building,door_plate\n", "text/csv")}
    return None
