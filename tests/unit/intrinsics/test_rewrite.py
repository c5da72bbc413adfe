"""Golden tests of input processing (engine-free)."""

from __future__ import annotations

import json

import pytest

from alora_serve.engine.types import ChatMessage
from alora_serve.intrinsics.builtins import builtin_config
from alora_serve.intrinsics.io_config import load_io_config
from alora_serve.intrinsics.rewrite import (
    DOCUMENTS_PREAMBLE,
    Document,
    IntrinsicInputError,
    IntrinsicRequest,
    instruction_fields,
    rewrite_request,
)

CONVERSATION = [
    ChatMessage(role="user", content="How long is the Nile?"),
    ChatMessage(role="assistant", content="It is 6,650 km long. It flows north."),
]
DOCUMENTS = [
    Document(doc_id="a", text="The Nile is 6,650 km long. It ends in a delta."),
    Document(doc_id="b", text="It flows north."),
]


def config(**fields):
    base = {"model": None, "response_format": None, "transformations": None}
    return load_io_config({**base, **fields})


def test_instruction_becomes_a_user_message_with_the_tagged_last_message() -> None:
    io = config(
        instruction="Check {{this}}: {last_message} against {requirement}.",
        sentence_boundaries={"last_message": "r"},
    )
    assert instruction_fields(io) == ["requirement"]
    request = IntrinsicRequest(messages=CONVERSATION)
    arguments = {"requirement": "facts"}
    rewritten = rewrite_request(io, request, arguments)
    tagged = "<r0> It is 6,650 km long. <r1> It flows north."
    assert [m.content for m in rewritten.messages] == [
        "How long is the Nile?",
        tagged,
        f"Check {{this}}: {tagged} against facts.",
    ]
    assert rewritten.messages[-1].role == "user"
    assert [s.text for s in rewritten.sentences["last_message"]] == [
        "It is 6,650 km long. ",
        "It flows north.",
    ]


def test_document_sentences_are_numbered_across_documents() -> None:
    io = config(sentence_boundaries={"documents": "c"})
    rewritten = rewrite_request(io, IntrinsicRequest(messages=CONVERSATION, documents=DOCUMENTS))
    assert [d.text for d in rewritten.documents] == [
        "<c0> The Nile is 6,650 km long. <c1> It ends in a delta.",
        "<c2> It flows north.",
    ]
    table = rewritten.sentences["documents"]
    assert [(s.document_id, s.begin, s.end) for s in table] == [
        ("a", 0, 27),
        ("a", 27, 46),
        ("b", 0, 15),
    ]


@pytest.mark.parametrize("style", ["string", "json"])
def test_documents_as_a_leading_message(style) -> None:
    io = config(docs_as_message=style)
    rewritten = rewrite_request(io, IntrinsicRequest(messages=CONVERSATION, documents=DOCUMENTS))
    assert rewritten.documents == ()
    first = rewritten.messages[0]
    assert first.role == "user" and rewritten.messages[1:] == tuple(CONVERSATION)
    if style == "json":
        assert json.loads(first.content) == [d.model_dump() for d in DOCUMENTS]
    else:
        assert first.content == (
            DOCUMENTS_PREAMBLE
            + "[Document a]\nThe Nile is 6,650 km long. It ends in a delta.\n\n"
            + "[Document b]\nIt flows north."
        )


def test_likelihood_asks_for_top_logprobs_and_parameters_pass_through() -> None:
    rewritten = rewrite_request(
        builtin_config("answerability"), IntrinsicRequest(messages=CONVERSATION)
    )
    assert rewritten.top_logprobs == 10
    assert rewritten.parameters == {"max_completion_tokens": 16}
    assert rewritten.response_schema == {"type": "string", "enum": ["answerable", "unanswerable"]}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, r"missing arguments \['requirement'\]"),
        ({"requirement": "x", "extra": "y"}, r"unknown arguments \['extra'\]"),
        ({"requirement": ["x"]}, "argument 'requirement' must be a string, got list"),
    ],
)
def test_arguments_are_checked(arguments, problem) -> None:
    request = IntrinsicRequest(messages=CONVERSATION)
    with pytest.raises(IntrinsicInputError, match=problem):
        rewrite_request(builtin_config("requirement_check"), request, arguments)


def test_tagging_needs_text_and_documents() -> None:
    empty = [ChatMessage(role="assistant", content="  ")]
    with pytest.raises(IntrinsicInputError, match="last message has no sentences"):
        rewrite_request(builtin_config("citations"), IntrinsicRequest(messages=empty))
    with pytest.raises(IntrinsicInputError, match="needs documents"):
        rewrite_request(builtin_config("citations"), IntrinsicRequest(messages=CONVERSATION))


def test_requests_reject_unknown_fields_and_roles() -> None:
    with pytest.raises(ValueError, match="role"):
        IntrinsicRequest(messages=[{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError, match="extra"):
        IntrinsicRequest(messages=CONVERSATION, temperature=0.3)
