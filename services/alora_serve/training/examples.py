"""Labelled examples of an intrinsic, one JSON object a line: the conversation (messages
and documents), the instruction's arguments, and the output the adapter should write."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alora_serve.intrinsics.call import IntrinsicRequest


class TrainingInputError(ValueError):
    """Examples, or a checkpoint, that a run cannot use as they are (says why)."""


class ExamplesError(TrainingInputError):
    """A file of examples that cannot be used as it is (names the line)."""


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request: IntrinsicRequest
    arguments: dict[str, Any] = Field(default_factory=dict)
    target: str = Field(min_length=1, description="the adapter's raw output, e.g. a JSON value")
    label: str | None = Field(default=None, description="the class, for evaluation")
    group: str | None = Field(default=None, description="e.g. the conversation's domain")
    source: str | None = Field(default=None, description="where it came from (ids, augmentation)")
    augmented: bool = Field(default=False, description="made, not found (not in the baselines)")


def read_examples(path: Path) -> list[Example]:
    examples = []
    with Path(path).open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                examples.append(Example.model_validate_json(line))
            except ValidationError as exc:
                raise ExamplesError(f"{path}:{number}: {exc}") from None
    if not examples:
        raise ExamplesError(f"{path}: no examples")
    return examples


def write_examples(path: Path, examples: Iterable[Example]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as out:
        for example in examples:
            out.write(json.dumps(example.model_dump(mode="json", exclude_defaults=True)) + "\n")
            count += 1
    return count
