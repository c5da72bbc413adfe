"""The alora.v1.Intrinsics service: authenticate, admit, validate, route, answer.

Every call runs under the caller's deadline: when it passes or the client cancels, the
call's task is cancelled, and with it the work it started in the workers (Serve cancels
the requests, the engines abort them in vLLM)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc
from alora.v1 import intrinsics_pb2 as pb
from alora.v1 import intrinsics_pb2_grpc

from alora_serve.engine.types import ChatMessage, GenerationChunk, SamplingOptions
from alora_serve.gateway import messages as convert
from alora_serve.gateway.admission import Admission
from alora_serve.gateway.auth import Principal, TokenTable
from alora_serve.gateway.failures import to_call_error
from alora_serve.gateway.reporting import log_call
from alora_serve.gateway.status import abort
from alora_serve.intrinsics.call import IntrinsicInfo, IntrinsicResult, IntrinsicsCall
from alora_serve.observability import tracing
from alora_serve.observability.context import (
    REQUEST_ID_HEADER,
    current_request_id,
    request_id_from,
)

TRACE_HEADERS = ("traceparent", "tracestate")  # W3C trace context a client may send


class IntrinsicsBackend(Protocol):
    """What the gateway routes to (the topology's ingress)."""

    async def run_many(
        self, call: IntrinsicsCall, received_at: float | None = None
    ) -> list[IntrinsicResult]: ...

    async def prefill(self, call: IntrinsicsCall) -> int: ...

    def chat_stream(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, tenant: str
    ) -> AsyncIterator[GenerationChunk]: ...


class IntrinsicsServicer(intrinsics_pb2_grpc.IntrinsicsServicer):
    def __init__(
        self,
        backend: IntrinsicsBackend,
        catalog: Sequence[IntrinsicInfo],
        tokens: TokenTable,
        admission: Admission,
    ) -> None:
        self._backend = backend
        self._intrinsics = [convert.info_to_pb(entry) for entry in catalog]
        self._tokens = tokens
        self._admission = admission

    async def ListIntrinsics(self, request, context) -> pb.ListIntrinsicsResponse:
        async with self._serving("ListIntrinsics", context) as principal:
            allowed = [i for i in self._intrinsics if principal.may_call(i.name)]
            return pb.ListIntrinsicsResponse(intrinsics=allowed)

    async def RunIntrinsic(self, request, context) -> pb.IntrinsicResult:
        received_at = time.perf_counter()
        async with self._serving("RunIntrinsic", context) as principal:
            call = convert.single_call_from_pb(request, principal.tenant)
            (result,) = await self._run(call, principal, received_at)
            return result

    async def RunIntrinsics(self, request, context) -> pb.RunIntrinsicsResponse:
        received_at = time.perf_counter()
        async with self._serving("RunIntrinsics", context) as principal:
            call = convert.call_from_pb(request, principal.tenant)
            results = await self._run(call, principal, received_at)
            return pb.RunIntrinsicsResponse(results=results)

    async def PrefillConversation(self, request, context) -> pb.PrefillConversationResponse:
        async with self._serving("PrefillConversation", context) as principal:
            call = convert.prefill_call_from_pb(request, principal.tenant)
            principal.authorize(call.intrinsics)
            kept = await self._backend.prefill(call)
            return pb.PrefillConversationResponse(kept_prompt_tokens=kept)

    async def Generate(self, request, context) -> None:
        # Written with context.write rather than as a generator, so that leaving the call
        # (cancelled, deadline, error) closes the stream and frees its slot right away.
        async with self._serving("Generate", context) as principal:
            messages, options = convert.generation_from_pb(request)
            stream = self._backend.chat_stream(messages, options, principal.tenant)
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    await context.write(convert.chunk_to_pb(chunk))

    async def _run(
        self, call: IntrinsicsCall, principal: Principal, received_at: float
    ) -> list[pb.IntrinsicResult]:
        principal.authorize(call.intrinsics)
        results = await self._backend.run_many(call, received_at)
        return [convert.result_to_pb(result) for result in results]

    @contextlib.asynccontextmanager
    async def _serving(
        self, method: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Principal]:
        """Give the call its request id (the client's ``x-request-id``, or a new one; sent
        back in the initial metadata) and a span; authenticate, take an admission slot,
        keep to the deadline; failures become statuses that say what to fix."""
        started, code, reason, tenant = time.perf_counter(), "OK", "", None
        offered = _metadata(context, REQUEST_ID_HEADER)
        current_request_id.set(request_id_from(offered[0] if offered else None))
        await context.send_initial_metadata(((REQUEST_ID_HEADER, current_request_id.get()),))
        trace_headers = {k: v for k, v in context.invocation_metadata() or () if k in TRACE_HEADERS}
        try:
            with tracing.span(
                f"alora.v1.Intrinsics/{method}", trace_headers, tracing.SpanKind.SERVER
            ):
                principal = self._tokens.authenticate(_metadata(context, "authorization"))
                tenant = principal.tenant
                with self._admission.slot():
                    async with asyncio.timeout(context.time_remaining()):
                        yield principal
        except asyncio.CancelledError:  # the client cancelled, or the deadline passed
            remaining = context.time_remaining()
            code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
            raise
        except Exception as exc:
            error = to_call_error(exc)
            code, reason = error.code.name, error.reason
            await abort(context, error)
        finally:
            self._admission.record(method, code, reason)
            log_call(method, code, reason, time.perf_counter() - started, tenant)


def _metadata(context: grpc.aio.ServicerContext, key: str) -> list[str]:
    return [value for k, value in context.invocation_metadata() or () if k == key]
