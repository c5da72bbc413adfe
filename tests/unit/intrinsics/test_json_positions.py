from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alora_serve.intrinsics.json_positions import Literal, parse_with_positions, strip_positions


def test_literal_spans_point_into_the_raw_text() -> None:
    raw = ' [{"r": 0, "c": [8, 11]}, {"s": "a, \\"b\\"", "t": true, "n": null, "x": -1.5e3}]'
    parsed = parse_with_positions(raw)
    assert parsed[0]["c"][1] == Literal(11, raw.index("11"), raw.index("11") + 2)
    text = parsed[1]["s"]
    assert text.value == 'a, "b"' and raw[text.begin : text.end] == '"a, \\"b\\""'
    assert parsed[1]["t"] == Literal(True, raw.index("true"), raw.index("true") + 4)
    assert parsed[1]["n"].value is None and parsed[1]["x"].value == -1500.0


def test_bare_string_like_granite_common() -> None:
    assert parse_with_positions('"answerability"') == Literal("answerability", 0, 15)


@pytest.mark.parametrize("bad", ['{"a" 1}', "[1,]", '{"a": 1} x', "", "tru", '"open'])
def test_invalid_json_is_rejected_with_offset(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid JSON at offset"):
        parse_with_positions(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values, st.sampled_from([None, 2]))
def test_agrees_with_json_loads(value, indent) -> None:
    raw = json.dumps(value, indent=indent)
    assert strip_positions(parse_with_positions(raw)) == json.loads(raw)
