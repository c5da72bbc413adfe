"""io.yaml output transformations: raw constrained model output -> structured result.

Each rule rewrites the nodes its ``input_path`` matches (found once, on the rule's input).
Semantics follow IBM's granite-common 0.4.1 (docs/notes/granite-common-intrinsics-io.md),
with deliberate differences: booleans work as likelihood categories (alternatives are read
as JSON spells them: ``true``, not Python's ``True``), a value that is none of the
categories is an error (granite-common returns 0.0, or the alternatives' mean), and
``drop_duplicates`` really drops duplicates.
"""

from __future__ import annotations

import copy
import json
import math
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from alora_serve.engine.types import StepLogprobs
from alora_serve.intrinsics.json_paths import Path, get_path, matching_paths, replace_at
from alora_serve.intrinsics.json_positions import Literal
from alora_serve.intrinsics.schemas import Schema, object_schema, replace_node, schema_nodes


class TransformationError(ValueError):
    """Model output that a transformation cannot process (names rule and path)."""


@dataclass
class OutputContext:
    """What rules may consult besides the value: the raw output's literal positions, the
    generated tokens that spell it with their logprobs, and sentence tables of the request."""

    positions: Any
    logprobs: Sequence[StepLogprobs] = ()
    sentences: Mapping[str, Any] = field(default_factory=dict)


class Transformation(ABC):
    kind: ClassVar[str]

    def __init__(self, input_path: Sequence[Any]) -> None:
        self.input_path = tuple(input_path)

    def apply(self, value: Any, context: OutputContext) -> Any:
        paths = matching_paths(value, self.input_path)
        value = copy.deepcopy(value)
        for path in paths:
            value = self.rewrite(value, path, context)
        return value

    def rewrite(self, value: Any, path: Path, context: OutputContext) -> Any:
        return replace_at(value, path, self.transform(get_path(value, path), path, context))

    def transform(self, node: Any, path: Path, context: OutputContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} overrides neither transform nor rewrite")

    def rewrite_schema(self, schema: Schema) -> None:
        """Make ``schema`` (in place) describe what this rule makes of values it describes."""
        for node in schema_nodes(schema, self.input_path):
            replace_node(node, self.transform_schema(node))

    def transform_schema(self, node: Schema) -> Schema:
        return node  # for rules that keep the shape of what they rewrite

    def fail(self, path: Path, problem: str) -> TransformationError:
        return TransformationError(f"{self.kind} at {list(path)}: {problem}")


class Likelihood(Transformation):
    """A constrained category -> the expected value of ``categories_to_values`` under the
    model's distribution at the category's first token."""

    kind = "likelihood"

    def __init__(
        self, input_path, categories_to_values: Mapping[Any, float], output_name: str | None = None
    ) -> None:
        super().__init__(input_path)
        if not categories_to_values:
            raise TransformationError("likelihood needs at least one category")
        self.categories = dict(categories_to_values)
        self.output_name = output_name

    def transform(self, node: Any, path: Path, context: OutputContext) -> Any:
        value = self._likelihood(node, path, context)
        return value if self.output_name is None else {self.output_name: value}

    def transform_schema(self, node: Schema) -> Schema:
        values = list(self.categories.values())
        number = {"type": "number", "minimum": min(values), "maximum": max(values)}
        return number if self.output_name is None else object_schema({self.output_name: number})

    def _likelihood(self, node: Any, path: Path, context: OutputContext) -> float:
        literal = get_path(context.positions, path)
        if not isinstance(literal, Literal) or literal.value != node:
            raise self.fail(path, "the value is not a literal of the raw output")
        category = self._category_of(node)
        if category is None:
            raise self.fail(path, f"{node!r} is none of the categories {list(self.categories)}")
        step, lead = self._value_token(literal, context.logprobs, path)
        chosen = step.chosen
        weighted = [(self.categories[category], math.exp(chosen.logprob))]
        for alternative in step.top:
            # An alternative counts for the first category it begins, once the characters
            # it shares with the chosen token before the value (e.g. a quote) are skipped.
            token, start = alternative.text, alternative.text[lead:]
            if token == chosen.text or token[:lead] != chosen.text[:lead] or not start:
                continue
            for other, other_value in self.categories.items():
                if _spelling(other).startswith(start):
                    weighted.append((other_value, math.exp(alternative.logprob)))
                    break
        total = sum(weight for _, weight in weighted)
        if total == 0.0:
            raise self.fail(path, f"the logprobs give {node!r} and its alternatives no weight")
        return sum(value * weight / total for value, weight in weighted)

    def _category_of(self, node: Any) -> Any:
        for category in self.categories:
            if _spelling(category) == _spelling(node):  # 7 and "7" alike, not 1 and true
                return category
        return None

    def _value_token(
        self, literal: Literal, tokens: Sequence[StepLogprobs], path: Path
    ) -> tuple[StepLogprobs, int]:
        """The generated token holding the value's first character, and how many of its
        characters come before it (granite's tokens start at the value: 0; a tokenizer
        may fuse the opening quote with the first letters)."""
        if not tokens:
            raise self.fail(path, "needs logprobs (request them with top_logprobs)")
        offset = literal.begin + (1 if isinstance(literal.value, str) else 0)
        position = 0
        for token in tokens:
            if position <= offset < position + len(token.chosen.text):
                return token, offset - position
            position += len(token.chosen.text)
        raise self.fail(path, f"no generated token covers offset {offset}")


class Explode(Transformation):
    """A list of records whose ``target_field`` is a list -> one record per item."""

    kind = "explode"

    def __init__(self, input_path, target_field: str) -> None:
        super().__init__(input_path)
        self.target_field = target_field

    def transform(self, node: Any, path: Path, context: OutputContext) -> list:
        records = _records(self, node, path, [self.target_field])
        exploded = []
        for record in records:
            items = record[self.target_field]
            if not isinstance(items, list):
                raise self.fail(path, f"field {self.target_field!r} is not a list")
            exploded.extend({**record, self.target_field: item} for item in items)
        return exploded

    def transform_schema(self, node: Schema) -> Schema:
        items = node.get("items", {})
        target = items.get("properties", {}).get(self.target_field, {})
        if target.get("type") != "array":
            raise TransformationError(f"explode: {self.target_field!r} is not an array field")
        items["properties"][self.target_field] = target.get("items", {})
        return node


class DropDuplicates(Transformation):
    """Records equal on ``target_fields`` -> the first of them (the model repeated itself)."""

    kind = "drop_duplicates"

    def __init__(self, input_path, target_fields: Sequence[str]) -> None:
        super().__init__(input_path)
        self.target_fields = list(target_fields)

    def transform(self, node: Any, path: Path, context: OutputContext) -> list:
        seen, kept = set(), []
        for record in _records(self, node, path, self.target_fields):
            key = tuple(_hashable(record[f]) for f in self.target_fields)
            if key not in seen:
                seen.add(key)
                kept.append(record)
        return kept


class Project(Transformation):
    """Keep (and optionally rename) fields of a record or of every record of a list."""

    kind = "project"

    def __init__(self, input_path, retained_fields: Sequence[str] | Mapping[str, str]) -> None:
        super().__init__(input_path)
        if isinstance(retained_fields, Mapping):
            self.fields = dict(retained_fields)
        else:
            self.fields = {name: name for name in retained_fields}

    def transform(self, node: Any, path: Path, context: OutputContext) -> Any:
        if isinstance(node, dict):
            return self._project(node)
        return [self._project(record) for record in _records(self, node, path, [])]

    def _project(self, record: dict) -> dict:
        return {new: record.get(old) for old, new in self.fields.items()}

    def transform_schema(self, node: Schema) -> Schema:
        if node.get("type") == "array":
            return {**node, "items": self.transform_schema(node.get("items", {}))}
        properties, required = node.get("properties", {}), set(node.get("required", ()))
        projected = {}
        for old, new in self.fields.items():
            field_schema = properties.get(old, {})
            # A field the record may lack comes out as null.
            projected[new] = (
                field_schema if old in required else {"anyOf": [field_schema, {"type": "null"}]}
            )
        return object_schema(projected)


class Nest(Transformation):
    """A value -> ``{field_name: value}``."""

    kind = "nest"

    def __init__(self, input_path, field_name: str) -> None:
        super().__init__(input_path)
        self.field_name = field_name

    def transform(self, node: Any, path: Path, context: OutputContext) -> dict:
        return {self.field_name: node}

    def transform_schema(self, node: Schema) -> Schema:
        return object_schema({self.field_name: node})


class MergeSpans(Transformation):
    """Adjacent spans (end of one == begin of the next) of the same group -> one span."""

    kind = "merge_spans"

    def __init__(
        self,
        input_path,
        group_fields: Sequence[str],
        begin_field: str,
        end_field: str,
        text_field: str | None = None,
    ) -> None:
        super().__init__(input_path)
        self.group_fields = list(group_fields)
        self.begin, self.end, self.text = begin_field, end_field, text_field

    def transform(self, node: Any, path: Path, context: OutputContext) -> list:
        spans = [self.begin, self.end] + ([self.text] if self.text else [])
        records = _records(self, node, path, self.group_fields + spans)
        for record in records:
            extra = set(record) - set(self.group_fields) - set(spans)
            if extra:
                raise self.fail(path, f"unexpected fields {sorted(extra)} (project them away)")
        ordered = sorted(records, key=lambda r: (self._group(r), r[self.begin]))
        merged: list[dict] = []
        for record in ordered:
            last = merged[-1] if merged else None
            if (
                last
                and self._group(last) == self._group(record)
                and last[self.end] == record[self.begin]
            ):
                last[self.end] = record[self.end]
                if self.text:
                    last[self.text] += record[self.text]
            else:
                merged.append(dict(record))
        return merged

    def _group(self, record: dict) -> tuple:
        return tuple(_sort_key(record[f]) for f in self.group_fields)


def _records(rule: Transformation, node: Any, path: Path, required: Sequence[str]) -> list[dict]:
    if not isinstance(node, list):
        raise rule.fail(path, f"expected a list of records, got {type(node).__name__}")
    for record in node:
        if not isinstance(record, dict):
            raise rule.fail(path, f"expected records (objects), got {type(record).__name__}")
        missing = [f for f in required if f not in record]
        if missing:
            raise rule.fail(path, f"record lacks fields {missing}")
    return node


def _spelling(value: Any) -> str:
    """How a category reads in JSON output (without quotes): YAML's ``true`` -> ``true``."""
    return value if isinstance(value, str) else json.dumps(value)


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def _sort_key(value: Any) -> tuple:
    # None sorts first; mixed types sort by type name instead of failing.
    return (value is not None, type(value).__name__, value if value is not None else 0)


TRANSFORMATIONS: tuple[type[Transformation], ...] = (
    Likelihood,
    Explode,
    DropDuplicates,
    Project,
    Nest,
    MergeSpans,
)
