"""Calls of the built-in intrinsics as a user makes them over the HTTP API (tests and
benchmarks of the main job)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from alora_serve.intrinsics.builtins import builtin_config, builtin_names

# A value for each instruction field of the built-ins that have one.
ARGUMENTS = {
    "context_relevance": {"document_content": "The tower was finished in 1889."},
    "requirement_check": {"requirement": "Answer in one sentence."},
}
# The embedded default's multi-LoRA worker: every built-in but answerability (merged).
LORA_WORKER = [n for n in builtin_names() if n != "answerability"]


def with_instruction(name: str) -> bool:
    """Whether the intrinsic appends an instruction: a base prefix of its own per call."""
    return builtin_config(name).instruction is not None


def call_body(names: Sequence[str], request: dict) -> dict:
    """The body of POST /v1/intrinsics:run, with each intrinsic's arguments."""
    arguments = {n: ARGUMENTS[n] for n in names if n in ARGUMENTS}
    return {"intrinsics": list(names), "request": request, "arguments": arguments}


def mixed_subsets(names: Sequence[str]) -> list[list[str]]:
    """Every subset of 2 or 3 of ``names`` that mixes intrinsics with an instruction and
    intrinsics without (several prefixes sharing a head, leased together)."""
    return [
        list(subset)
        for size in (2, 3)
        for subset in itertools.combinations(names, size)
        if 0 < sum(map(with_instruction, subset)) < size
    ]


def two_turn_conversation(tag: str) -> dict:
    """Two turns and one document; ``tag`` opens the first message, so a new tag makes a
    conversation no cache holds."""
    return {
        "messages": [
            {"role": "user", "content": f"[{tag}] How tall is the Eiffel Tower?"},
            {"role": "assistant", "content": "It is 330 metres tall."},
            {"role": "user", "content": "When was it finished?"},
            {"role": "assistant", "content": "In 1889, for the World's Fair in Paris."},
        ],
        "documents": [
            {
                "doc_id": "1",
                "text": "The Eiffel Tower is 330 metres tall. It was finished in 1889 for the "
                "World's Fair.",
            }
        ],
    }
