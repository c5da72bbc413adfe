"""The OpenAI-compatible API's bodies: what a request may say (and the 400 naming the
field otherwise), what it asks the engine for, and the responses and chunks it gets."""

from __future__ import annotations

import json

import openai
import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from alora_serve.engine.types import StepLogprobs, TokenLogprob, Usage
from alora_serve.gateway.openai.errors import OpenAIError, openai_errors
from alora_serve.gateway.openai.request import (
    CHAT_COMPLETION_BODY,
    ChatCompletionRequest,
    RequestFieldError,
    _field_at_fault,
)
from alora_serve.gateway.openai.responses import Completion, Responses, models_list
from alora_serve.intrinsics.call import AdapterInfo, IntrinsicInfo

HELLO = [{"role": "user", "content": "hi"}]


def parsed(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": HELLO, **fields})


def refused(**fields) -> RequestFieldError:
    with pytest.raises(ValidationError) as caught:
        parsed(**fields)
    return _field_at_fault(caught.value)


def test_a_plain_request_is_greedy_with_the_default_budget() -> None:
    options = parsed().sampling_options()
    assert options.temperature == 0.0 and options.max_tokens == 256
    assert options.logprobs is None and options.json_schema is None and options.stop == ()


def test_sampling_fields_reach_the_engine_options() -> None:
    options = parsed(
        max_completion_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop="END"
    ).sampling_options()
    assert (options.max_tokens, options.temperature, options.top_p) == (7, 0.5, 0.9)
    assert options.seed == 3 and options.stop == ("END",)
    assert parsed(max_tokens=5, stop=["a", "b"]).sampling_options().stop == ("a", "b")


def test_logprobs_ask_for_the_top_k_or_only_the_chosen_token() -> None:
    assert parsed(logprobs=True, top_logprobs=5).sampling_options().logprobs == 5
    assert parsed(logprobs=True).sampling_options().logprobs == 0


@pytest.mark.parametrize(
    ("fields", "schema", "choice"),
    [
        ({"response_format": {"type": "json_object"}}, {"type": "object"}, None),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            {},
            None,
        ),
        ({"response_format": {"type": "text"}}, None, None),
        ({"structured_outputs": {"json": {"type": "integer"}}}, {"type": "integer"}, None),
        ({"structured_outputs": {"json": '{"type": "string"}'}}, {"type": "string"}, None),
        ({"structured_outputs": {"choice": ["yes", "no"]}}, None, ("yes", "no")),
        ({"guided_json": {"enum": [1]}}, {"enum": [1]}, None),
        ({"guided_choice": ["a"]}, None, ("a",)),
    ],
)
def test_each_output_constraint_becomes_a_schema_or_choices(fields, schema, choice) -> None:
    options = parsed(**fields).sampling_options()
    assert options.json_schema == schema and options.choice == choice


def test_text_parts_and_documents_make_the_conversation() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
            "documents": [{"doc_id": "1", "text": "doc"}],
            "chat_template_kwargs": {"thinking": False},
        }
    )
    conversation = request.conversation()
    assert conversation.messages[0].content == "ab"
    assert conversation.documents[0].text == "doc"
    assert conversation.chat_template_kwargs == {"thinking": False}


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"user": "me"}, "user", "not supported"),
        ({"tools": []}, "tools", "not supported"),
        ({"n": 2}, "n", "1"),
        ({"top_logprobs": 3}, "top_logprobs", "needs logprobs"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs", "20"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "needs stream"),
        ({"stop": ""}, "stop", "at least 1 character"),
        ({"stop": 5}, "stop", "valid string"),  # the field, not pydantic's union member
        ({"structured_outputs": {}}, "structured_outputs", "not none"),
        ({"structured_outputs": {"json": {}, "choice": ["a"]}}, "structured_outputs", "one of"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"guided_json": {}, "guided_choice": ["a"]}, "guided_choice", "one output constraint"),
        ({"response_format": {"type": "json_schema"}}, "response_format", "json_schema"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"structured_outputs": {"regex": "a+"}}, "structured_outputs.regex", "not supported"),
        ({"documents": [{"doc_id": "1", "text": "t", "url": "u"}]}, "documents.0.url", "not"),
    ],
)
def test_what_is_not_honoured_is_refused_naming_the_field(fields, param, says) -> None:
    error = refused(**fields)
    assert error.param == param and says in str(error)


def test_a_field_sent_as_null_is_as_if_not_sent() -> None:
    request = parsed(tools=None, temperature=None, user=None, model=None)
    assert request.sampling_options() == parsed().sampling_options()
    assert refused(tools=[{"type": "function"}]).param == "tools"


def test_a_schema_given_as_a_string_must_be_a_json_object() -> None:
    with pytest.raises(RequestFieldError, match="not valid JSON") as caught:
        parsed(guided_json="{nope").sampling_options()
    assert caught.value.param == "guided_json"
    with pytest.raises(RequestFieldError, match="schema object"):
        parsed(structured_outputs={"json": "[1]"}).sampling_options()


def test_http_errors_get_openai_s_body_with_the_field_at_fault() -> None:
    cause = RequestFieldError("n: must be 1", "n")
    with pytest.raises(OpenAIError) as caught, openai_errors():
        raise HTTPException(400, str(cause), {"X-Why": "n"}) from cause
    error = caught.value
    assert error.status == 400 and error.headers == {"X-Why": "n"}
    assert error.body() == {
        "error": {"message": "n: must be 1", "type": "BadRequestError", "param": "n", "code": 400}
    }


def test_the_openai_sdk_reads_the_error_body_as_its_typed_exception() -> None:
    import httpx

    body = OpenAIError(404, "model 'x' is not served", "model").body()
    response = httpx.Response(404, json=body, request=httpx.Request("POST", "http://x/v1"))
    client = openai.OpenAI(base_url="http://x/v1", api_key="k")
    error = client._make_status_error_from_response(response)
    assert isinstance(error, openai.NotFoundError)
    assert error.message.endswith("model 'x' is not served") and error.param == "model"


def steps() -> tuple[StepLogprobs, ...]:
    yes, no, extra = (
        TokenLogprob(1, "yes", -0.1),
        TokenLogprob(2, "no", -2.4),
        TokenLogprob(3, "?", -9.0),
    )
    low = TokenLogprob(4, "é", float("-inf"))
    return (
        StepLogprobs(chosen=yes, top=(yes, no, extra)),
        StepLogprobs(chosen=low, top=(yes, no, TokenLogprob(5, "x", float("-inf")), low)),
    )


USAGE = Usage(prompt_tokens=100, reused_prompt_tokens=96, generated_tokens=2)


def test_a_completion_carries_text_logprobs_and_reused_tokens() -> None:
    body = Responses("answerability", top_logprobs=2).completion(
        Completion("yes", "stop", USAGE, steps())
    )
    assert body["object"] == "chat.completion" and body["model"] == "answerability"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "yes"}
    content = choice["logprobs"]["content"]
    assert content[0]["token"] == "yes" and content[0]["logprob"] == -0.1
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["yes", "no"]  # top 2 only
    assert content[1]["logprob"] == -9999.0 and content[1]["bytes"] == list("é".encode())
    # vLLM lists a chosen token ranked below the top k after them: the top k stay k
    assert [t["token"] for t in content[1]["top_logprobs"]] == ["yes", "no"]
    three = Responses("m", top_logprobs=3).completion(Completion("yes", "stop", USAGE, steps()))
    assert three["choices"][0]["logprobs"]["content"][1]["top_logprobs"][2]["logprob"] == -9999.0
    assert body["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 2,
        "total_tokens": 102,
        "prompt_tokens_details": {"cached_tokens": 96},
    }
    json.dumps(body)  # no infinities


def test_a_completion_streams_as_role_text_end_and_usage() -> None:
    responses = Responses("m", None)
    chunks = list(responses.chunks_of(Completion("yes", "stop", USAGE), include_usage=True))
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "yes"},
        {},
    ]
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["prompt_tokens"] == 100
    assert len({c["id"] for c in chunks}) == 1
    assert len(list(responses.chunks_of(Completion("", "stop", USAGE), False))) == 3


def test_models_list_the_base_model_then_intrinsics_with_it_as_parent() -> None:
    info = IntrinsicInfo(
        name="answerability",
        description="",
        adapter=AdapterInfo(kind="alora"),
        arguments=[],
        requires_documents=True,
        response_format=None,
        result_schema=None,
    )
    listed = models_list("smollm2", [info], created=1)
    assert [(m["id"], m["parent"], m["root"]) for m in listed["data"]] == [
        ("smollm2", None, "smollm2"),
        ("answerability", "smollm2", "answerability"),
    ]


def test_the_published_body_schema_has_no_unresolved_references() -> None:
    schema = CHAT_COMPLETION_BODY["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(schema) and "messages" in schema["required"]


def test_max_completion_tokens_wins_over_max_tokens_as_in_vllm() -> None:
    # granite-common adds max_completion_tokens to a request that may carry max_tokens
    assert parsed(max_tokens=99, max_completion_tokens=7).sampling_options().max_tokens == 7


def test_a_json_schema_format_without_a_schema_asks_for_any_json_object() -> None:
    fields = {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
    assert parsed(**fields).sampling_options().json_schema == {"type": "object"}
