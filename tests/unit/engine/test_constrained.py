from __future__ import annotations

import pytest

from alora_serve.engine.constrained import determined_output

ANSWERABILITY = {"type": "string", "enum": ["answerable", "unanswerable"]}
RELEVANCE = {"type": "string", "enum": ["relevant", "irrelevant", "partially relevant"]}


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        (ANSWERABILITY, "", None),
        (ANSWERABILITY, '"', None),  # both values still possible
        (ANSWERABILITY, '"un', '"unanswerable"'),
        (ANSWERABILITY, '"a', '"answerable"'),
        (ANSWERABILITY, '"answerable"', '"answerable"'),
        (RELEVANCE, '"p', '"partially relevant"'),
        (RELEVANCE, '"r', '"relevant"'),
        ({"type": "integer", "enum": list(range(10))}, "7", "7"),
        ({"type": "integer", "enum": [1, 10]}, "1", None),  # "1" or the start of "10"
        ({"type": "string"}, '"anything', None),  # not an enum: never cut short
        (None, '"x', None),
    ],
)
def test_determined_output(schema, text, expected) -> None:
    assert determined_output(schema, text) == expected
