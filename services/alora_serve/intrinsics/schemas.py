"""JSON schemas walked by io.yaml paths.

The transformations rewrite schemas as they rewrite values, so an intrinsic's result
schema is derived from its response format (see ``IOConfig.result_schema``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

Schema = dict[str, Any]
_MAX_REF_DEPTH = 32


class SchemaError(ValueError):
    """A response format these tools cannot follow (the message says where)."""


def inline_refs(schema: Schema) -> Schema:
    """A copy of ``schema`` with local ``#/$defs/...`` references replaced by their
    definitions (recursive schemas are refused)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any, depth: int) -> Any:
        if depth > _MAX_REF_DEPTH:
            raise SchemaError("recursive $ref in the response format is not supported")
        if isinstance(node, list):
            return [resolve(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if reference is not None:
            name = reference.removeprefix("#/$defs/")
            if name == reference or name not in definitions:
                raise SchemaError(f"unsupported $ref {reference!r} (only #/$defs/<name>)")
            merged = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
            return resolve(merged, depth + 1)
        return {k: resolve(v, depth) for k, v in node.items() if k != "$defs"}

    return resolve(copy.deepcopy(schema), 0)


def schema_nodes(schema: Schema, path: Sequence[Any]) -> list[Schema]:
    """The sub-schemas describing the values an io.yaml ``input_path`` matches (``None``
    matches any key or index). Nodes are the schema's own dicts: edit them in place."""
    nodes = [schema]
    for step in path:
        nodes = [child for node in nodes for child in _children(node, step)]
    return nodes


def _children(node: Schema, step: Any) -> list[Schema]:
    if isinstance(step, str):
        child = node.get("properties", {}).get(step)
        return [child] if child is not None else []
    children = []
    if "items" in node and isinstance(node["items"], dict):
        children.append(node["items"])
    if step is None:
        children.extend(node.get("properties", {}).values())
    return children


def replace_node(node: Schema, replacement: Schema) -> None:
    """Replace a schema node in place (so the enclosing schema sees the change)."""
    replacement = copy.deepcopy(replacement)
    node.clear()
    node.update(replacement)


def object_schema(properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "properties": properties, "required": list(properties)}


# Compact JSON (the engine disables free whitespace); xgrammar 0.2.8 may still put a space
# after a comma, so separators count 2 characters. A string character may be a \uXXXX escape.
_SEPARATOR, _ESCAPED_CHAR = 2, 6
_SCALAR_CHARS = {"boolean": 5, "null": 4}


def max_json_chars(schema: Schema) -> float:
    """Upper bound on the length of any JSON text valid under ``schema`` (with refs
    inlined), or ``math.inf`` if the schema does not bound it."""
    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return max(max_json_chars(option) for option in options)
    kind = schema.get("type")
    if kind in _SCALAR_CHARS:
        return _SCALAR_CHARS[kind]
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return max(len(str(int(schema["minimum"]))), len(str(int(schema["maximum"]))))
    if kind == "string" and "maxLength" in schema:
        return 2 + _ESCAPED_CHAR * schema["maxLength"]
    if kind == "array" and "maxItems" in schema:
        count = schema["maxItems"]
        return 2 + count * max_json_chars(schema.get("items", {})) + max(count - 1, 0) * _SEPARATOR
    if kind == "object" and schema.get("additionalProperties", False) is False:
        properties = schema.get("properties", {})
        members = [len(json.dumps(k)) + 1 + max_json_chars(v) for k, v in properties.items()]
        return 2 + sum(members) + max(len(members) - 1, 0) * _SEPARATOR
    return math.inf
