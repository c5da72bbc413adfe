from __future__ import annotations

import pytest
from alora.v1 import intrinsics_pb2 as pb
from pydantic import ValidationError

from alora_serve.engine.types import Usage
from alora_serve.intrinsics.runner import IntrinsicResult
from alora_serve.server.grpc_messages import (
    call_from_pb,
    info_to_pb,
    result_to_pb,
    single_call_from_pb,
)

CONVERSATION = pb.Conversation(
    messages=[pb.Message(role="user", content="Who wrote Hamlet?")],
    documents=[pb.Document(doc_id="1", text="Hamlet is by Shakespeare.")],
)


def test_a_composed_call_keeps_names_documents_and_per_intrinsic_arguments() -> None:
    request = pb.RunIntrinsicsRequest(
        intrinsics=["answerability", "requirement_check"], conversation=CONVERSATION
    )
    request.arguments["requirement_check"].update({"requirement": "be brief"})
    call = call_from_pb(request, tenant="acme")
    assert call.intrinsics == ["answerability", "requirement_check"]
    assert call.request.documents[0].text == "Hamlet is by Shakespeare."
    assert call.arguments == {"requirement_check": {"requirement": "be brief"}}
    assert call.tenant == "acme"


def test_a_single_call_carries_its_arguments_on_the_request() -> None:
    request = pb.RunIntrinsicRequest(intrinsic="requirement_check", conversation=CONVERSATION)
    request.arguments.update({"requirement": "cite"})
    call = single_call_from_pb(request, tenant="acme")
    assert call.request.arguments == {"requirement": "cite"}


def test_malformed_conversations_are_refused_naming_the_field() -> None:
    bad_role = pb.Conversation(messages=[pb.Message(role="robot", content="hi")])
    with pytest.raises(ValidationError, match="role"):
        call_from_pb(pb.RunIntrinsicsRequest(intrinsics=["a"], conversation=bad_role), "t")
    with pytest.raises(ValidationError, match="messages"):
        call_from_pb(pb.RunIntrinsicsRequest(intrinsics=["a"]), "t")


@pytest.mark.parametrize(
    ("result", "typed", "value"),
    [
        ({"answerability_likelihood": 0.25}, "answerability_likelihood", 0.25),
        ({"certainty": 0.75}, "certainty", 0.75),
        ({"rewritten_question": "Who wrote it?"}, "rewritten_question", "Who wrote it?"),
        ([{"response_begin": 0, "response_end": 3}], None, None),
    ],
)
def test_results_carry_json_typed_views_usage_and_timings(result, typed, value) -> None:
    produced = IntrinsicResult(
        name="x", result=result, raw_output="raw", usage=Usage(100, 90, 2), seconds=0.25
    )
    message = result_to_pb(produced, total_s=0.5)
    assert message.WhichOneof("typed") == typed
    if typed in ("answerability_likelihood", "certainty"):
        assert getattr(message, typed).value == value
    elif typed:
        assert getattr(message, typed) == value
    from google.protobuf import json_format

    assert json_format.MessageToDict(message.result) == result
    assert (message.usage.prompt_tokens, message.usage.reused_prompt_tokens) == (100, 90)
    assert message.timings.total.ToMilliseconds() == 500
    assert message.timings.worker.ToMilliseconds() == 250


def test_catalog_entries_become_intrinsic_info() -> None:
    described = {
        "name": "requirement_check",
        "description": "Does the response satisfy a requirement?",
        "adapter": {"kind": "alora", "path": "/x"},
        "arguments": ["requirement"],
        "requires_documents": False,
        "response_format": None,
        "result_schema": {"type": "object", "properties": {"x": {"type": "number"}}},
    }
    info = info_to_pb(described)
    assert (info.name, info.adapter_kind, info.needs_documents) == (
        "requirement_check",
        "alora",
        False,
    )
    assert dict(info.arguments["requirement"]) == {"type": "string"}
    assert info.result_schema["properties"]["x"]["type"] == "number"
