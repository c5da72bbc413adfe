"""The ingress deployment: routes intrinsic calls to workers and base turns to the engine
that owns conversations; serves the HTTP API and handle calls."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from alora_serve.engine import ChatMessage, Generation, SamplingOptions
from alora_serve.engine.types import GenerationChunk, TemplateKwargs
from alora_serve.errors import failure
from alora_serve.gateway.admission import Admission
from alora_serve.gateway.auth import Principal
from alora_serve.gateway.http_api import BodyLimit, error_responses, result_to_json, serving_http
from alora_serve.gateway.metrics import CallMetrics, GatewayCollector
from alora_serve.gateway.openai.errors import (
    OpenAIError,
    OpenAIErrorBody,
    error_response,
    openai_errors,
)
from alora_serve.gateway.openai.request import CHAT_COMPLETION_BODY, parse_request
from alora_serve.gateway.openai.responses import STREAM_RESPONSE, Responses, models_list
from alora_serve.gateway.reporting import reported
from alora_serve.gateway.server import Gateway, start_gateway
from alora_serve.gateway.servicer import IntrinsicsServicer
from alora_serve.intrinsics.call import (
    IntrinsicInfo,
    IntrinsicRequest,
    IntrinsicResult,
    IntrinsicsCall,
)
from alora_serve.intrinsics.catalog import UnknownIntrinsicError
from alora_serve.intrinsics.runner import IntrinsicInputError
from alora_serve.observability import tracing
from alora_serve.topology.chat_completions import ChatCompletions, EventStream, events
from alora_serve.topology.config import IngressSettings
from alora_serve.topology.handles import CallTimeoutError, WorkerUnavailableError, answer
from alora_serve.topology.handles import stream as start_stream
from alora_serve.topology.metrics import RayMetricsBridge
from alora_serve.topology.replica import keep_servers_local, observe
from alora_serve.topology.routing import session_id

KV_NODE_REFRESH_S = 30.0
KV_NODE_TIMEOUT_S = 5.0
logger = logging.getLogger(__name__)


def _conversation_key(request: IntrinsicRequest) -> str:
    return request.model_dump_json(include={"messages", "documents"})


async def _stamped(reply: Awaitable[Any]) -> tuple[Any, float]:
    return await reply, time.perf_counter()


http = FastAPI(title="alora-serve", version="v1")
http.add_middleware(BodyLimit, openai_paths=("/v1/models", "/v1/chat/completions"))
http.add_exception_handler(OpenAIError, error_response)


@serve.deployment
@serve.ingress(http)
class IntrinsicsIngress:
    """Routes intrinsic calls to the worker serving each intrinsic (several intrinsics of
    one call run together on each worker, sharing the conversation's base prefix) and the
    base model's turns to the engine that owns conversations. Serves HTTP and handles."""

    async def __init__(
        self,
        workers: Mapping[str, DeploymentHandle],
        routes: Mapping[str, str],
        catalog: list[IntrinsicInfo],
        base: DeploymentHandle,
        settings: IngressSettings,
    ) -> None:
        keep_servers_local()
        observe(settings.observability, "ingress")
        http.state.max_body_bytes = settings.max_body_bytes
        self._workers = dict(workers)  # worker name -> handle
        self._routes = dict(routes)  # intrinsic -> worker name
        self._catalog = catalog
        self._base = base  # the prefill service, or the colocated worker
        self._settings = settings
        self._kv_node: tuple[str, float] | None = None  # (node, when learned)
        self._started = int(time.time())  # the models' "created"
        self._chats = ChatCompletions(self, settings.model_name, self._routes)
        self._gateway: Gateway | None = None
        # One bound on calls served at once, for gRPC and HTTP alike.
        self._admission = Admission(settings.max_in_flight)
        collectors = [GatewayCollector(self._admission)]
        self._call_metrics = None
        if settings.observability.metrics:
            self._call_metrics = CallMetrics(self._routes)
            collectors += self._call_metrics.collectors()
        bridge = RayMetricsBridge(collectors, "ingress")
        self._background = [asyncio.create_task(bridge.publish_forever())]
        if settings.gateway is not None:
            servicer = IntrinsicsServicer(self, catalog, settings.tokens, self._admission)
            self._gateway = await start_gateway(settings.gateway, servicer)

    async def __del__(self) -> None:
        """Serve's graceful shutdown: in-flight gRPC calls finish first."""
        for task in getattr(self, "_background", ()):
            task.cancel()
        if getattr(self, "_gateway", None) is not None:
            await self._gateway.stop()

    # -- handle API ------------------------------------------------------------------

    def catalog(self) -> list[IntrinsicInfo]:
        return self._catalog

    async def run_many(
        self, call: IntrinsicsCall, received_at: float | None = None
    ) -> list[IntrinsicResult]:
        """Results in the order asked. ``received_at``: when the front door received the
        call (``time.perf_counter()`` in this replica; default: now), so that each
        result's timings cover the whole call as its caller saw it."""
        received_at = time.perf_counter() if received_at is None else received_at
        with tracing.span("ingress.run_many", intrinsics=list(call.intrinsics)):
            return await reported(
                call, received_at, lambda: self._run_many(call, received_at), self._call_metrics
            )

    async def _run_many(self, call: IntrinsicsCall, received_at: float) -> list[IntrinsicResult]:
        answers = await self._on_workers("run_many", call)
        finished_at = time.perf_counter()
        by_name = {
            result.name: dataclasses.replace(
                result,
                timings=result.timings.seen_from_front_door(received_at, answered_at, finished_at),
            )
            for batch, answered_at in answers
            for result in batch
        }
        return [by_name[name] for name in call.intrinsics]

    async def prefill(self, call: IntrinsicsCall) -> int:
        """Compute and keep the base KV these intrinsics will need on this conversation
        (e.g. after the base model's turn), so their calls later only decode. Returns
        the prompt tokens now kept (the longest prefix)."""
        return max((kept for kept, _ in await self._on_workers("prefill", call)), default=0)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> Generation:
        """The base model's turn, on the engine that owns conversations."""
        timeout_s = self._settings.call_timeout_s
        arguments = (list(messages), options, tenant, template_kwargs)
        return await answer(self._base, "chat", *arguments, timeout_s=timeout_s)

    async def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """The base model's turn as it is generated. Closing the stream early cancels the
        generation in the engine."""
        arguments = (list(messages), options, tenant, template_kwargs)
        stream = start_stream(self._base, "chat_stream", *arguments)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            stream.cancel()

    async def _on_workers(self, method: str, call: IntrinsicsCall) -> list[tuple[Any, float]]:
        """Call ``method`` on each worker with its part of ``call``, concurrently:
        (answer, ``time.perf_counter()`` when it arrived) per worker."""
        if unknown := [n for n in call.intrinsics if n not in self._routes]:
            raise UnknownIntrinsicError(unknown[0], self._routes)
        groups: dict[str, list[str]] = {}
        for name in call.intrinsics:
            groups.setdefault(self._routes[name], []).append(name)
        node = await self._conversation_node()
        session = session_id(node, call.tenant, _conversation_key(call.request))
        parts = [
            asyncio.ensure_future(_stamped(self._call(worker, session, method, call.only(group))))
            for worker, group in groups.items()
        ]
        try:
            return await asyncio.gather(*parts)
        except BaseException:
            for part in parts:  # one part failed or the call was cancelled: stop the rest
                part.cancel()
            raise

    async def _call(self, worker: str, session: str, method: str, call: IntrinsicsCall) -> Any:
        """Intrinsic calls are idempotent: a replica that dies under one is retried once
        (the router picks another replica); a worker that does not answer in time fails
        the call instead of hanging it."""
        handle, timeout_s = self._workers[worker], self._settings.call_timeout_s
        options = {"timeout_s": timeout_s, "session": session, "traced": True}
        try:
            return await answer(handle, method, call, **options)
        except (RayActorError, ReplicaUnavailableError):
            pass  # the replica died under the call: once more, on the replica now chosen
        try:
            return await answer(handle, method, call, **options)
        except (RayActorError, ReplicaUnavailableError) as exc:
            raise WorkerUnavailableError(
                f"{worker} failed twice (its replicas died: {failure(exc)}); retry later"
            ) from exc

    async def _conversation_node(self) -> str:
        """The node whose store holds conversations' KV (re-learned now and then: the
        prefill service may restart elsewhere). Only a routing hint: while the prefill
        service cannot say, calls keep the last answer (or none) and still go ahead."""
        now = time.monotonic()
        if self._kv_node is None or now - self._kv_node[1] > KV_NODE_REFRESH_S:
            known = self._kv_node[0] if self._kv_node else ""
            try:
                stats = await answer(self._base, "stats", timeout_s=KV_NODE_TIMEOUT_S)
                known = stats["node"]
            except (RayActorError, CallTimeoutError) as exc:
                logger.warning("KV node unknown for now (%s); routing without it", exc)
            self._kv_node = (known, now)
        return self._kv_node[0]

    # -- HTTP ------------------------------------------------------------------------

    @http.get("/health")
    def health(self) -> dict[str, str]:
        return {"status": "ok", "model": self._settings.model_name}

    @http.get("/v1/intrinsics", responses=error_responses(401, 429))
    async def list_intrinsics(self, request: Request) -> list[IntrinsicInfo]:
        async with self._serving_http("GET /v1/intrinsics", request) as principal:
            return [info for info in self._catalog if principal.may_call(info.name)]

    @http.post(
        "/v1/intrinsics:run", responses=error_responses(400, 401, 403, 404, 413, 429, 503, 504)
    )
    async def run_http(self, call: IntrinsicsCall, request: Request) -> list[dict]:
        """With bearer tokens configured, the token's tenant replaces the body's."""
        received_at = time.perf_counter()
        async with self._serving_http("POST /v1/intrinsics:run", request) as principal:
            if self._settings.tokens.required:
                call = call.model_copy(update={"tenant": principal.tenant})
            if call.as_sent is not None:
                raise IntrinsicInputError("as_sent is for /v1/chat/completions; remove it")
            principal.authorize(call.intrinsics)
            results = await self.run_many(call, received_at)
            return [result_to_json(result) for result in results]

    # -- the OpenAI-compatible API (gateway.openai) -----------------------------------

    @http.get("/v1/models", responses=error_responses(401, 429, body=OpenAIErrorBody))
    async def list_models(self, request: Request) -> dict:
        with openai_errors():
            async with self._serving_http("GET /v1/models", request) as principal:
                served = [info for info in self._catalog if principal.may_call(info.name)]
                return models_list(self._settings.model_name, served, self._started)

    @http.post(
        "/v1/chat/completions",
        responses=STREAM_RESPONSE
        | error_responses(400, 401, 403, 404, 413, 429, 503, 504, body=OpenAIErrorBody),
        openapi_extra=CHAT_COMPLETION_BODY,
    )
    async def chat_completions(self, request: Request) -> Any:
        """``model``: the base model, or an intrinsic (its request as its client rewrote
        it, e.g. granite-common's; run as aLoRA on the conversation's base KV)."""
        received_at = time.perf_counter()
        with openai_errors():
            async with contextlib.AsyncExitStack() as setup:
                route = "POST /v1/chat/completions"
                principal = await setup.enter_async_context(self._serving_http(route, request))
                body = await parse_request(request)
                responses = Responses(body.model or self._settings.model_name, body.top_logprobs)
                if not body.stream:
                    completion = await self._chats.completion(body, principal, received_at)
                    return responses.completion(completion)
                chunks = self._chats.chunks(body, principal, received_at, responses)
                first = await anext(chunks)  # failures before the first chunk get a status
                held = setup.pop_all()  # the call's admission slot, until the stream ends
        return EventStream(events(held, first, chunks), media_type="text/event-stream")

    def _serving_http(
        self, route: str, request: Request
    ) -> contextlib.AbstractAsyncContextManager[Principal]:
        return serving_http(route, request, self._settings.tokens, self._admission)
