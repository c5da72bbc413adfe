"""Turning an intrinsic's raw (constrained) model output into its structured result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alora_serve.engine.types import StepLogprobs
from alora_serve.intrinsics.io_config import IOConfig
from alora_serve.intrinsics.json_positions import parse_with_positions, strip_positions
from alora_serve.intrinsics.transformations import OutputContext


class OutputParseError(ValueError):
    """The model's output is not the JSON its response format promises."""


def process_output(
    config: IOConfig,
    content: str,
    logprobs: Sequence[StepLogprobs] = (),
    sentences: Mapping[str, Any] | None = None,
) -> Any:
    """Apply the io.yaml's transformations, in order, to the parsed model output."""
    if config.response_format is None and not config.rules():
        return content  # a free-text intrinsic
    try:
        positions = parse_with_positions(content)
    except ValueError as exc:
        raise OutputParseError(
            f"model output is not valid JSON ({exc}): {content[:200]!r}"
        ) from None
    value = strip_positions(positions)
    context = OutputContext(positions=positions, logprobs=logprobs, sentences=sentences or {})
    for rule in config.rules():
        value = rule.apply(value, context)
    return value
