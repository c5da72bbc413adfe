from __future__ import annotations

import pytest

from alora_serve.intrinsics.json_positions import parse_with_positions
from alora_serve.intrinsics.schemas import inline_refs, max_json_chars
from alora_serve.intrinsics.sentences import (
    DecodeSentences,
    Sentence,
    sentences_of_tagged_text,
    tag_sentences,
)
from alora_serve.intrinsics.transformations import OutputContext, TransformationError

TEXT = "Purple fish are yellow.  Green fish are too!\nBlue ones? None."


def test_tagging_keeps_true_offsets_and_joins_with_single_spaces() -> None:
    tagged = tag_sentences(TEXT, "i", first_index=3, document_id="d")
    assert tagged.text == (
        "<i3> Purple fish are yellow. <i4> Green fish are too! <i5> Blue ones? <i6> None."
    )
    assert [s.text for s in tagged.sentences] == [
        "Purple fish are yellow.  ",
        "Green fish are too!\n",
        "Blue ones? ",
        "None.",
    ]
    for sentence in tagged.sentences:
        assert TEXT[sentence.begin : sentence.end] == sentence.text
        assert sentence.document_id == "d"
    # Each sentence runs to the next, so neighbours are adjacent spans.
    ends = [s.end for s in tagged.sentences[:-1]]
    assert ends == [s.begin for s in tagged.sentences[1:]]


def test_empty_text_has_no_sentences() -> None:
    assert tag_sentences("", "c").sentences == ()


def test_granite_common_d174a3f_offsets_from_tagged_text() -> None:
    tagged = "<i0> Purple bumble fish are yellow. <i1> Green bumble fish are also yellow."
    # That version advanced `begin` by each tag's position in the tagged text.
    assert sentences_of_tagged_text(tagged, "i") == [
        Sentence(0, 36, "Purple bumble fish are yellow. "),
        Sentence(36, 70, "Green bumble fish are also yellow."),
    ]
    assert sentences_of_tagged_text("no tags", "i") == []


def _decode(value, raw, tables, **kwargs):
    rule = DecodeSentences(
        kwargs.get("path", [None, "r"]),
        source=kwargs.get("source", "last_message"),
        output_names={"begin": "b", "end": "e", "text": "t", "document_id": None},
    )
    context = OutputContext(positions=parse_with_positions(raw), sentences=tables)
    return rule.apply(value, context)


def test_decode_sentences_adds_fields_to_the_record() -> None:
    table = {"last_message": tag_sentences(TEXT, "r").sentences}
    result = _decode([{"r": 1, "x": True}], '[{"r": 1, "x": true}]', table)
    assert result == [{"r": 1, "x": True, "b": 25, "e": 45, "t": "Green fish are too!\n"}]


@pytest.mark.parametrize(
    ("value", "tables", "problem"),
    [
        ([{"r": 9}], {"last_message": (Sentence(0, 1, "a"),)}, "sentence 9 does not exist"),
        ([{"r": "0"}], {"last_message": (Sentence(0, 1, "a"),)}, "expected a sentence number"),
        ([{"r": 0}], {}, "no tagged last_message sentences"),
    ],
)
def test_decode_sentences_errors_name_the_problem(value, tables, problem) -> None:
    with pytest.raises(TransformationError, match=problem):
        _decode(value, "null", tables)


def test_decode_sentences_rejects_bad_definitions() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        DecodeSentences([None, "r"], source="title", output_names={})
    with pytest.raises(ValueError, match="unknown output_names"):
        DecodeSentences([None, "r"], source="documents", output_names={"start": "s"})


def test_bounding_a_response_format_to_the_sentences_tagged() -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "r": {"type": "integer", "minimum": 0},
                "c": {"type": "array", "items": {"type": "integer"}, "maxItems": 8},
            },
            "required": ["r", "c"],
        },
    }
    assert max_json_chars(schema) == float("inf")
    DecodeSentences([None, "r"], "last_message", {"begin": "b"}).bound_numbers(schema, 3)
    DecodeSentences([None, "c"], "documents", {"begin": "b"}).bound_numbers(schema, 20)
    item = schema["items"]["properties"]
    assert (item["r"]["minimum"], item["r"]["maximum"]) == (0, 2)
    assert item["c"]["items"] == {"type": "integer", "minimum": 0, "maximum": 19}
    assert item["c"]["maxItems"] == 8  # the definition's own, tighter bound stays
    assert schema["maxItems"] == 3  # at most one record per response sentence
    # Now every valid output has a length bound: {"r":2,"c":[19,...]} at most 3 times.
    # A separator counts 2 characters (see schemas.py), the literal's comma only 1.
    record = len('{"r":2,"c":[]}') + 1 + 8 * 2 + 7 * 2
    assert max_json_chars(schema) == 2 + 3 * record + 2 * 2


def test_inline_refs_and_recursion() -> None:
    schema = {"$defs": {"E": {"type": "integer"}}, "items": {"$ref": "#/$defs/E"}}
    assert inline_refs(schema) == {"items": {"type": "integer"}}
    with pytest.raises(ValueError, match="recursive"):
        inline_refs({"$defs": {"E": {"items": {"$ref": "#/$defs/E"}}}, "$ref": "#/$defs/E"})
