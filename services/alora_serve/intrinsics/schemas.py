"""JSON schemas walked by io.yaml paths.

The transformations rewrite schemas as they rewrite values, so an intrinsic's result
schema is derived from its response format (see ``IOConfig.result_schema``).
"""

from __future__ import annotations

import copy
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
