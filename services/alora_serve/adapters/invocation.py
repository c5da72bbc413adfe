"""Where an aLoRA adapter switches on (PEFT semantics)."""

from __future__ import annotations

from collections.abc import Sequence

from alora_serve.errors import InvalidInputError


class InvocationNotFoundError(InvalidInputError):
    """An aLoRA intrinsic was called on a prompt that does not contain its invocation."""

    reason = "INVOCATION_NOT_FOUND"


def find_invocation_start(tokens: Sequence[int], invocation: Sequence[int]) -> int | None:
    """Index of the first token of the LAST occurrence of ``invocation`` in ``tokens``.

    PEFT activates an aLoRA adapter from there on; everything before is the base model.
    Returns None if the sequence does not occur.
    """
    n, m = len(tokens), len(invocation)
    if m == 0:
        raise ValueError("an invocation sequence cannot be empty")
    first = invocation[0]
    for start in range(n - m, -1, -1):
        if tokens[start] == first and list(tokens[start : start + m]) == list(invocation):
            return start
    return None
