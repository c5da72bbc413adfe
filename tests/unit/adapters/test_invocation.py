from __future__ import annotations

import pytest

from alora_serve.adapters import find_invocation_start


@pytest.mark.parametrize(
    ("tokens", "invocation", "start"),
    [
        ([5, 1, 2, 9], [1, 2], 1),
        ([1, 2, 7, 1, 2, 8], [1, 2], 3),  # the LAST occurrence wins
        ([1, 1, 1], [1, 1], 1),  # overlapping occurrences: last start
        ([1, 2], [1, 2], 0),
        ([3, 4, 5], [1, 2], None),
        ([1], [1, 2], None),
        ([], [1], None),
    ],
)
def test_last_occurrence(tokens, invocation, start) -> None:
    assert find_invocation_start(tokens, invocation) == start


def test_empty_invocation_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        find_invocation_start([1, 2], [])
