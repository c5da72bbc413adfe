"""Turning an intrinsic's raw (constrained) model output into its structured result."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from alora_serve.engine.types import StepLogprobs
from alora_serve.intrinsics.io_config import IOConfig
from alora_serve.intrinsics.json_positions import parse_with_positions, strip_positions
from alora_serve.intrinsics.transformations import OutputContext

# gpt-oss (Harmony) output: <|channel|>final<|message|>{payload}<|return|>
HARMONY_CHANNEL, HARMONY_MESSAGE = "<|channel|>", "<|message|>"
HARMONY_ENDS = frozenset({"<|end|>", "<|return|>", "<|end_of_text|>"})


class OutputParseError(ValueError):
    """The model's output is not the JSON its response format promises."""


def process_output(
    config: IOConfig,
    content: str,
    logprobs: Sequence[StepLogprobs] = (),
    sentences: Mapping[str, Any] | None = None,
) -> Any:
    """Apply the io.yaml's transformations, in order, to the parsed model output."""
    if config.logprobs_workaround and (final := harmony_final_channel(logprobs)):
        logprobs = final  # as granite-common: the tokens are the truth, not the content
        content = "".join(step.chosen.text for step in final)
    if config.response_format is None and not config.rules():
        return content  # a free-text intrinsic
    try:
        positions = parse_with_positions(content)
    except ValueError as exc:
        raise OutputParseError(
            f"model output is not valid JSON ({exc}): {content[:200]!r}"
        ) from None
    value = strip_positions(positions)
    context = OutputContext(
        positions=positions, logprobs=message_tokens(logprobs, content), sentences=sentences or {}
    )
    for rule in config.rules():
        value = rule.apply(value, context)
    return value


def message_tokens(tokens: Sequence[StepLogprobs], text: str) -> Sequence[StepLogprobs]:
    """The tokens that spell ``text``, without leading tokens it lacks (a gpt-oss channel
    header the server stripped from the message). Where no token boundary starts all of
    ``text`` (detokenized pieces that differ from it), the boundary that starts the most
    of it; the last one on ties, as a reasoning channel before the answer may quote it."""
    texts = [step.chosen.text for step in tokens]
    joined = "".join(texts)
    if not text or joined.startswith(text):
        return tokens
    best, best_length, begin = 0, 0, 0
    for index, token_text in enumerate(texts):
        length = _shared_prefix_length(joined[begin : begin + len(text)], text)
        if length and length >= best_length:
            best, best_length = index, length
        begin += len(token_text)
    return tokens[best:]


def _shared_prefix_length(a: str, b: str) -> int:
    mismatches = (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return next(mismatches, min(len(a), len(b)))


def harmony_final_channel(tokens: Sequence[StepLogprobs]) -> Sequence[StepLogprobs]:
    """The tokens of the last ``<|channel|>final<|message|>`` payload (none if there is
    none), matched on whole tokens so text that merely reads like a header never counts."""
    texts = [step.chosen.text for step in tokens]
    starts = [
        start
        for index, text in enumerate(texts)
        if text == HARMONY_CHANNEL and (start := _payload_start(texts, index)) is not None
    ]
    if not starts:
        return ()
    end = next((i for i in range(starts[-1], len(texts)) if texts[i] in HARMONY_ENDS), len(texts))
    return tokens[starts[-1] : end]


def _payload_start(texts: Sequence[str], channel: int) -> int | None:
    """Where the payload starts if ``final`` and ``<|message|>`` follow the channel token
    at ``channel`` (blank tokens between them allowed)."""
    nonblank = (i for i in range(channel + 1, len(texts)) if texts[i].strip())
    header = list(itertools.islice(nonblank, 2))
    if (
        len(header) == 2
        and texts[header[0]].strip() == "final"
        and (texts[header[1]] == HARMONY_MESSAGE)
    ):
        return header[1] + 1
    return None
