"""OpenAI-style chat completions (``gateway.openai``) on the ingress: the base model's turn,
or an intrinsic's request as its client rewrote it, through the ingress's own calls, so
they share its admission, tenants, deadlines and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from alora_serve.engine import ChatMessage, Generation, SamplingOptions
from alora_serve.engine.types import GenerationChunk, TemplateKwargs
from alora_serve.gateway.auth import Principal
from alora_serve.gateway.http_api import http_error
from alora_serve.gateway.openai.errors import as_openai_error
from alora_serve.gateway.openai.request import (
    ADAPTER_NAME_FIELD,
    ChatCompletionRequest,
    RequestFieldError,
    UnknownModelError,
)
from alora_serve.gateway.openai.responses import DONE_EVENT, Completion, Responses, event
from alora_serve.intrinsics.call import IntrinsicResult, IntrinsicsCall


class Backend(Protocol):
    """What chat completions run on (the ingress)."""

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> Generation: ...

    def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> AsyncIterator[GenerationChunk]: ...

    async def run_many(
        self, call: IntrinsicsCall, received_at: float | None = None
    ) -> list[IntrinsicResult]: ...


@dataclass(frozen=True)
class ChatCompletions:
    backend: Backend
    model_name: str  # the base model's
    intrinsics: Collection[str]  # served as models

    async def completion(
        self, body: ChatCompletionRequest, principal: Principal, received_at: float
    ) -> Completion:
        """The answer to ``body``, received at ``received_at`` (``time.perf_counter()``)."""
        intrinsic = self.intrinsic_of(body, principal)
        return await self._answer(body, intrinsic, principal.tenant, received_at)

    async def chunks(
        self,
        body: ChatCompletionRequest,
        principal: Principal,
        received_at: float,
        responses: Responses,
    ) -> AsyncIterator[dict[str, Any]]:
        """The answer as stream chunks: the base model's text as it is generated; an
        intrinsic's output (a few tokens of constrained JSON), or any answer with logprobs,
        in one piece once complete."""
        intrinsic = self.intrinsic_of(body, principal)
        if body.logprobs or intrinsic is not None:
            completion = await self._answer(body, intrinsic, principal.tenant, received_at)
            for chunk in responses.chunks_of(completion, body.include_usage):
                yield chunk
            return
        conversation = body.conversation()
        stream = self.backend.chat_stream(
            conversation.messages,
            body.sampling_options(),
            principal.tenant,
            conversation.chat_template_kwargs,
        )
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            pieces = aiter(stream)
            piece = await anext(pieces)  # the engine took the request
            yield responses.chunk({"role": "assistant", "content": ""})
            while piece.usage is None:
                yield responses.chunk({"content": piece.text})
                piece = await anext(pieces)
            if piece.text:
                yield responses.chunk({"content": piece.text})
            yield responses.chunk({}, piece.finish_reason)
            if body.include_usage:
                yield responses.usage_chunk(piece.usage)

    async def _answer(
        self, body: ChatCompletionRequest, intrinsic: str | None, tenant: str, received_at: float
    ) -> Completion:
        options, conversation = body.sampling_options(), body.conversation()
        if intrinsic is None:
            result = await self.backend.chat(
                conversation.messages, options, tenant, conversation.chat_template_kwargs
            )
            return Completion(result.text, result.finish_reason, result.usage, result.logprobs)
        call = IntrinsicsCall(
            intrinsics=[intrinsic], request=conversation, tenant=tenant, as_sent=options
        )
        (result,) = await self.backend.run_many(call, received_at)
        return Completion(result.raw_output, result.finish_reason, result.usage, result.logprobs)

    def intrinsic_of(self, body: ChatCompletionRequest, principal: Principal) -> str | None:
        """The intrinsic the request names (None: the base model), checked: ``model``, as
        vLLM names a LoRA module, or on the base model ``chat_template_kwargs.adapter_name``,
        as Granite Switch and Mellea name an adapter (``-`` and ``_`` alike in both)."""
        model = body.model or self.model_name
        adapter = body.adapter_name
        if model != self.model_name:
            name = self._served(model, "model", principal)
            if adapter is not None and self._served(adapter, ADAPTER_NAME_FIELD, principal) != name:
                raise RequestFieldError(
                    f"{ADAPTER_NAME_FIELD}: {adapter!r} is not the model's adapter {model!r}; "
                    "name the adapter in one of them",
                    ADAPTER_NAME_FIELD,
                )
        elif adapter is not None:
            name = self._served(adapter, ADAPTER_NAME_FIELD, principal)
        elif body.documents:
            raise RequestFieldError(
                "documents: the base model takes documents in a message; documents "
                "are for intrinsics (model: an intrinsic's name)",
                "documents",
            )
        else:
            return None
        principal.authorize([name])
        return name

    def _served(self, name: str, field: str, principal: Principal) -> str:
        served = {_spelled(intrinsic): intrinsic for intrinsic in self.intrinsics}
        if (found := served.get(_spelled(name))) is None:
            listed = [i for i in self.intrinsics if principal.may_call(i)]  # as /v1/models
            raise UnknownModelError(name, [self.model_name, *listed], field)
        return found


def _spelled(name: str) -> str:
    return name.replace("-", "_")


async def events(
    held: contextlib.AsyncExitStack, first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[str]:
    """A chat completion's stream as server-sent events, ``held`` (the call's admission
    slot and its accounting) until it ends. A failure after the stream began (its status,
    200, already sent) is an error event; the call is counted as it ended. The client
    going away closes the stream, which cancels the generation."""
    with contextlib.suppress(HTTPException):  # counted by ``held``; the client has its event
        async with held, contextlib.aclosing(chunks):  # type: ignore[type-var]
            try:
                yield event(first)
                async for chunk in chunks:
                    yield event(chunk)
            except Exception as exc:
                yield event(as_openai_error(http_error(exc)).body())
                raise
    yield DONE_EVENT


class EventStream(StreamingResponse):
    """A stream of server-sent events that closes its events however the response ends:
    Starlette leaves an iterator it stopped reading (a client gone while a chunk was on
    its way) to the garbage collector, which would hold the call's admission slot and its
    generation until then."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[union-attr]
