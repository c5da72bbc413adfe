from __future__ import annotations

import pytest
from alora.v1 import intrinsics_pb2 as pb
from pydantic import ValidationError

from alora_serve.engine.types import ChatMessage, GenerationChunk, SamplingOptions, Usage
from alora_serve.gateway.messages import (
    DEFAULT_MAX_TOKENS,
    call_from_pb,
    chunk_to_pb,
    generation_from_pb,
    info_to_pb,
    prefill_call_from_pb,
    result_to_pb,
    single_call_from_pb,
)
from alora_serve.intrinsics.call import (
    AdapterInfo,
    IntrinsicInfo,
    IntrinsicInputError,
    IntrinsicResult,
    Timings,
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


def test_a_single_call_carries_its_arguments_like_a_composed_one() -> None:
    request = pb.RunIntrinsicRequest(intrinsic="requirement_check", conversation=CONVERSATION)
    request.arguments.update({"requirement": "cite"})
    call = single_call_from_pb(request, tenant="acme")
    assert call.arguments == {"requirement_check": {"requirement": "cite"}}


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
    timings = Timings(
        total_s=0.5,
        queue_s=0.05,
        base_kv_s=0.1,
        adapter_prefill_s=0.15,
        decode_s=0.04,
        worker_s=0.4,
    )
    produced = IntrinsicResult(
        name="x", result=result, raw_output="raw", usage=Usage(100, 90, 2), timings=timings
    )
    message = result_to_pb(produced)
    assert message.WhichOneof("typed") == typed
    if typed in ("answerability_likelihood", "certainty"):
        assert getattr(message, typed).value == value
    elif typed:
        assert getattr(message, typed) == value
    from google.protobuf import json_format

    assert json_format.MessageToDict(message.result) == result
    assert (message.usage.prompt_tokens, message.usage.reused_prompt_tokens) == (100, 90)
    phases = ("queue", "base_kv", "adapter_prefill", "decode", "other")
    milliseconds = {p: getattr(message.timings, p).ToMilliseconds() for p in phases}
    assert milliseconds == {
        "queue": 50,
        "base_kv": 100,
        "adapter_prefill": 150,
        "decode": 40,
        "other": 160,
    }
    assert sum(milliseconds.values()) == message.timings.total.ToMilliseconds() == 500
    assert message.timings.worker.ToMilliseconds() == 400


def test_catalog_entries_become_intrinsic_info() -> None:
    described = IntrinsicInfo(
        name="requirement_check",
        description="Does the response satisfy a requirement?",
        adapter=AdapterInfo(kind="alora"),
        arguments=["requirement"],
        requires_documents=False,
        response_format=None,
        result_schema={"type": "object", "properties": {"x": {"type": "number"}}},
    )
    info = info_to_pb(described)
    assert (info.name, info.adapter_kind, info.needs_documents) == (
        "requirement_check",
        "alora",
        False,
    )
    assert dict(info.arguments["requirement"]) == {"type": "string"}
    assert info.result_schema["properties"]["x"]["type"] == "number"


def test_a_prefill_call_keeps_the_conversation_and_the_intrinsics_to_come() -> None:
    request = pb.PrefillConversationRequest(
        conversation=CONVERSATION, intrinsics=["answerability", "citations"]
    )
    call = prefill_call_from_pb(request, tenant="acme")
    assert call.intrinsics == ["answerability", "citations"]
    assert call.request.messages == [ChatMessage(role="user", content="Who wrote Hamlet?")]
    assert [d.doc_id for d in call.request.documents] == ["1"]
    assert call.arguments == {}
    assert call.tenant == "acme"
    with pytest.raises(ValidationError, match="messages"):
        prefill_call_from_pb(pb.PrefillConversationRequest(intrinsics=["a"]), "acme")


CHAT = pb.Conversation(
    messages=[
        pb.Message(role="system", content="Be brief."),
        pb.Message(role="user", content="Who wrote Hamlet?"),
    ]
)


def test_zero_sampling_fields_mean_their_defaults() -> None:
    messages, options = generation_from_pb(pb.GenerateRequest(conversation=CHAT))
    assert messages == [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Who wrote Hamlet?"),
    ]
    assert options == SamplingOptions(
        max_tokens=DEFAULT_MAX_TOKENS, temperature=0.0, top_p=1.0, seed=None
    )
    assert DEFAULT_MAX_TOKENS == 256


def test_set_sampling_fields_are_kept() -> None:
    sampling = pb.SamplingOptions(max_tokens=7, temperature=0.5, top_p=0.25, seed=11)
    _, options = generation_from_pb(pb.GenerateRequest(conversation=CHAT, sampling=sampling))
    assert (options.max_tokens, options.temperature, options.top_p, options.seed) == (
        7,
        0.5,
        0.25,
        11,
    )


def test_a_zero_seed_is_a_seed() -> None:
    request = pb.GenerateRequest(conversation=CHAT, sampling=pb.SamplingOptions(seed=0))
    assert generation_from_pb(request)[1].seed == 0
    request.sampling.ClearField("seed")
    assert generation_from_pb(request)[1].seed is None


def test_bad_sampling_values_are_refused_naming_the_field() -> None:
    bad = pb.GenerateRequest(conversation=CHAT, sampling=pb.SamplingOptions(temperature=-1))
    with pytest.raises(ValidationError, match="temperature"):
        generation_from_pb(bad)
    bad = pb.GenerateRequest(conversation=CHAT, sampling=pb.SamplingOptions(top_p=1.5))
    with pytest.raises(ValidationError, match="top_p"):
        generation_from_pb(bad)


def test_generate_refuses_documents_empty_conversations_and_bad_roles() -> None:
    with pytest.raises(IntrinsicInputError, match="no documents"):
        generation_from_pb(pb.GenerateRequest(conversation=CONVERSATION))
    with pytest.raises(IntrinsicInputError, match="no messages"):
        generation_from_pb(pb.GenerateRequest())
    robot = pb.Conversation(messages=[pb.Message(role="robot", content="beep")])
    with pytest.raises(ValidationError, match="role"):
        generation_from_pb(pb.GenerateRequest(conversation=robot))


def test_only_the_last_chunk_carries_usage_and_a_finish_reason() -> None:
    middle = chunk_to_pb(GenerationChunk(text="Shake"))
    assert middle.text == "Shake"
    assert middle.finish_reason == ""
    assert not middle.HasField("usage")

    last = chunk_to_pb(GenerationChunk(text="speare.", finish_reason="stop", usage=Usage(12, 8, 3)))
    assert (last.text, last.finish_reason) == ("speare.", "stop")
    assert last.HasField("usage")
    assert (
        last.usage.prompt_tokens,
        last.usage.reused_prompt_tokens,
        last.usage.generated_tokens,
    ) == (12, 8, 3)


def test_timings_add_up_to_the_nanosecond() -> None:
    """Each phase is rounded to whole nanoseconds; ``other`` takes the remainder."""
    third = 1 / 3
    timings = Timings(
        total_s=4 * third, queue_s=third / 7, base_kv_s=third, adapter_prefill_s=third / 3,
        decode_s=third, worker_s=third * 3,
    )  # fmt: skip
    message = result_to_pb(
        IntrinsicResult(name="x", result={}, raw_output="", usage=Usage(1, 0, 1), timings=timings)
    ).timings
    parts = (message.queue, message.base_kv, message.adapter_prefill, message.decode)
    total = sum(p.ToNanoseconds() for p in parts) + message.other.ToNanoseconds()
    assert total == message.total.ToNanoseconds() == round(4 * third * 1e9)
