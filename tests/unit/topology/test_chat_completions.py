"""Which intrinsic a chat completion names: vLLM's way (``model``: the adapter) or Granite
Switch's and Mellea's (the base model, ``chat_template_kwargs.adapter_name``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from alora_serve.engine.types import GenerationChunk, Usage
from alora_serve.errors import InvalidInputError
from alora_serve.gateway.auth import PermissionDeniedError, Principal
from alora_serve.gateway.http_api import http_error
from alora_serve.gateway.openai.request import (
    ChatCompletionRequest,
    RequestFieldError,
    UnknownModelError,
)
from alora_serve.gateway.openai.responses import Responses
from alora_serve.topology.chat_completions import ChatCompletions, events

BASE = "SmolLM2-135M-Instruct"
HELLO = [{"role": "user", "content": "hi"}]
EVERYONE = Principal("default", None)


def named(principal: Principal = EVERYONE, **fields) -> str | None:
    chats = ChatCompletions(
        backend=None, model_name=BASE, intrinsics=["requirement_check", "answerability"]
    )
    body = ChatCompletionRequest.model_validate({"messages": HELLO, **fields})
    return chats.intrinsic_of(body, principal)


def test_the_base_model_or_no_model_is_the_base_model_s_turn() -> None:
    assert named() is None and named(model=BASE) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "requirement_check"},  # vLLM: the adapter as the model
        {"model": "requirement-check"},
        {"model": BASE, "chat_template_kwargs": {"adapter_name": "requirement-check"}},
        {
            "model": "requirement_check",
            "chat_template_kwargs": {"adapter_name": "requirement-check"},
        },
    ],
)
def test_an_intrinsic_is_named_as_vllm_or_granite_switch_names_it(fields) -> None:
    assert named(**fields) == "requirement_check"


def test_the_adapter_name_is_not_a_template_variable() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": HELLO, "chat_template_kwargs": {"adapter_name": "x", "thinking": False}}
    )
    assert body.conversation().chat_template_kwargs == {"thinking": False}


def test_what_names_no_served_intrinsic_is_refused_naming_the_field() -> None:
    with pytest.raises(UnknownModelError) as unknown:
        named(chat_template_kwargs={"adapter_name": "telepathy"})
    assert unknown.value.param == "chat_template_kwargs.adapter_name"
    assert BASE in str(unknown.value) and "requirement_check" in str(unknown.value)
    with pytest.raises(RequestFieldError, match="not the model's adapter"):
        named(model="requirement_check", chat_template_kwargs={"adapter_name": "answerability"})
    with pytest.raises(RequestFieldError, match="documents are for intrinsics"):
        named(documents=[{"doc_id": "1", "text": "t"}])


def test_the_caller_s_token_decides_which_intrinsics_it_may_name() -> None:
    with pytest.raises(PermissionDeniedError):
        named(Principal("acme", frozenset({"answerability"})), model="requirement_check")


# -- streams: events, failures after the first chunk, clients going away ----------------


class StreamingBackend:
    """The base model's turn as two pieces, then ``fail`` (or the end), recording when the
    generation was closed."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail, self.closed = fail, False

    async def chat_stream(self, messages, options, tenant, template_kwargs=None):
        try:
            yield GenerationChunk("Hel")
            yield GenerationChunk("lo")
            if self.fail is not None:
                raise self.fail
            yield GenerationChunk(
                "", "stop", Usage(prompt_tokens=3, generated_tokens=2, reused_prompt_tokens=0)
            )
        finally:
            self.closed = True


async def streamed(backend: StreamingBackend, ended: list[str]) -> Any:
    """The events of a streamed chat on ``backend``; ``ended`` gets how the call ended."""
    chats = ChatCompletions(backend=backend, model_name=BASE, intrinsics=[])
    body = ChatCompletionRequest.model_validate({"messages": HELLO, "stream": True})

    @contextlib.asynccontextmanager
    async def call_slot():  # as serving_http holds a call: counted as it ended, mapped
        try:
            yield
            ended.append("OK")
        except Exception as exc:
            ended.append(type(exc).__name__)
            raise http_error(exc) from exc
        except BaseException as exc:  # the client went away
            ended.append(type(exc).__name__)
            raise

    held = contextlib.AsyncExitStack()
    await held.enter_async_context(call_slot())
    chunks = chats.chunks(body, EVERYONE, 0.0, Responses(BASE, None))
    return events(held, await anext(chunks), chunks)


def collect(backend: StreamingBackend) -> tuple[list[str], list[str]]:
    async def run() -> list[str]:
        return [event async for event in await streamed(backend, ended)]

    ended: list[str] = []
    return asyncio.run(run()), ended


def test_a_stream_is_events_ending_with_done_and_the_call_counted_ok() -> None:
    backend = StreamingBackend()
    sent, ended = collect(backend)
    texts = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in sent[:-1]]
    assert texts == ["", "Hel", "lo", None] and sent[-1] == "data: [DONE]\n\n"
    assert ended == ["OK"] and backend.closed


def test_a_failure_after_the_first_chunk_is_an_error_event_then_done() -> None:
    backend = StreamingBackend(fail=InvalidInputError("the engine refused it"))
    sent, ended = collect(backend)
    error = json.loads(sent[-2][6:])["error"]
    assert error["code"] == 400 and "the engine refused it" in error["message"]
    assert sent[-1] == "data: [DONE]\n\n" and ended == ["InvalidInputError"] and backend.closed


def test_a_client_going_away_closes_the_generation_and_releases_the_call() -> None:
    backend, ended = StreamingBackend(), []

    async def read_one_then_leave() -> None:
        stream = await streamed(backend, ended)
        await anext(stream)
        await stream.aclose()  # what EventStream does however the response ends

    asyncio.run(read_one_then_leave())
    assert backend.closed and ended == ["GeneratorExit"]
