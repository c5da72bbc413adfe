"""The ingress deployment: routes intrinsic calls to workers and base turns to the engine
that owns conversations; serves the HTTP API and handle calls."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from alora_serve.disagg.leases import TooManyLeasesError
from alora_serve.disagg.remote_prefixes import PrefillUnavailableError
from alora_serve.engine import ChatMessage, Generation, SamplingOptions
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.catalog import UnknownIntrinsicError
from alora_serve.intrinsics.rewrite import IntrinsicInputError, IntrinsicRequest
from alora_serve.intrinsics.runner import IntrinsicResult
from alora_serve.kv.block_pool import StoreFullError
from alora_serve.server.http_api import ChatCompletionRequest, chat_completion
from alora_serve.topology.routing import session_id

KV_NODE_REFRESH_S = 30.0
KV_NODE_TIMEOUT_S = 5.0
logger = logging.getLogger(__name__)


class WorkerUnavailableError(RuntimeError):
    """No replica of a worker could take the call; retry later."""


def _conversation_key(request: IntrinsicRequest) -> str:
    return request.model_dump_json(include={"messages", "documents"})


http = FastAPI(title="alora-serve", version="v1")


@serve.deployment
@serve.ingress(http)
class IntrinsicsIngress:
    """Routes intrinsic calls to the worker serving each intrinsic (several intrinsics of
    one call run together on each worker, sharing the conversation's base prefix) and the
    base model's turns to the engine that owns conversations. Serves HTTP and handles."""

    def __init__(
        self,
        workers: Mapping[str, DeploymentHandle],
        routes: Mapping[str, str],
        catalog: list[dict],
        base: DeploymentHandle,
        model_name: str,
        call_timeout_s: float,
    ) -> None:
        self._workers = dict(workers)  # worker name -> handle
        self._routes = dict(routes)  # intrinsic -> worker name
        self._catalog = catalog
        self._base = base  # the prefill service, or the colocated worker
        self._model_name = model_name
        self._kv_node: tuple[str, float] | None = None  # (node, when learned)
        self._call_timeout_s = call_timeout_s

    # -- handle API ------------------------------------------------------------------

    def catalog(self) -> list[dict]:
        return self._catalog

    async def run_many(self, call: IntrinsicsCall) -> list[IntrinsicResult]:
        batches = await self._on_workers("run_many", call)
        by_name = {result.name: result for batch in batches for result in batch}
        return [by_name[name] for name in call.intrinsics]

    async def prefill(self, call: IntrinsicsCall) -> None:
        """Compute and keep the base KV these intrinsics will need on this conversation
        (e.g. after the base model's turn), so their calls later only decode."""
        await self._on_workers("prefill", call)

    async def chat(self, messages: Sequence[ChatMessage], options: SamplingOptions) -> Generation:
        """The base model's turn, on the engine that owns conversations."""
        return await self._base.chat.remote(list(messages), options)

    async def _on_workers(self, method: str, call: IntrinsicsCall) -> list[Any]:
        """Call ``method`` on each worker with its part of ``call``, concurrently."""
        if unknown := [n for n in call.intrinsics if n not in self._routes]:
            raise UnknownIntrinsicError(unknown[0], self._routes)
        groups: dict[str, list[str]] = {}
        for name in call.intrinsics:
            groups.setdefault(self._routes[name], []).append(name)
        node = await self._conversation_node()
        session = session_id(node, call.tenant, _conversation_key(call.request))
        return await asyncio.gather(
            *(
                self._call(worker, session, method, call.only(group))
                for worker, group in groups.items()
            )
        )

    async def _call(self, worker: str, session: str, method: str, call: IntrinsicsCall) -> Any:
        """Intrinsic calls are idempotent: a replica that dies under one is retried once
        (the router picks another replica); a worker that does not answer in time fails
        the call instead of hanging it."""
        handle = getattr(self._workers[worker].options(session_id=session), method)
        try:
            return await self._answer(worker, handle.remote(call))
        except RayActorError:
            pass  # the replica died under the call: once more, on the replica now chosen
        try:
            return await self._answer(worker, handle.remote(call))
        except RayActorError as exc:
            raise WorkerUnavailableError(
                f"{worker} failed twice (its replicas died: {exc}); retry later"
            ) from exc

    async def _answer(self, worker: str, response: Any) -> Any:
        try:
            return await asyncio.wait_for(response, self._call_timeout_s)
        except TimeoutError as exc:
            raise WorkerUnavailableError(
                f"{worker} did not answer within {self._call_timeout_s:.0f} s; retry later"
            ) from exc

    async def _conversation_node(self) -> str:
        """The node whose store holds conversations' KV (re-learned now and then: the
        prefill service may restart elsewhere). Only a routing hint: while the prefill
        service cannot say, calls keep the last answer (or none) and still go ahead."""
        now = time.monotonic()
        if self._kv_node is None or now - self._kv_node[1] > KV_NODE_REFRESH_S:
            known = self._kv_node[0] if self._kv_node else ""
            try:
                stats = await asyncio.wait_for(self._base.stats.remote(), KV_NODE_TIMEOUT_S)
                known = stats["node"]
            except (RayActorError, TimeoutError) as exc:
                logger.warning("KV node unknown for now (%s); routing without it", exc)
            self._kv_node = (known, now)
        return self._kv_node[0]

    # -- HTTP ------------------------------------------------------------------------

    @http.get("/health")
    def health(self) -> dict[str, str]:
        return {"status": "ok", "model": self._model_name}

    @http.get("/v1/intrinsics")
    def list_intrinsics(self) -> list[dict]:
        return self._catalog

    @http.post("/v1/intrinsics:run")
    async def run_http(self, call: IntrinsicsCall) -> list[dict]:
        try:
            results = await self.run_many(call)
        except UnknownIntrinsicError as exc:
            raise HTTPException(404, str(exc)) from exc
        except IntrinsicInputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except (TooManyLeasesError, StoreFullError) as exc:
            raise HTTPException(429, str(exc)) from exc
        except (WorkerUnavailableError, PrefillUnavailableError) as exc:
            raise HTTPException(503, str(exc)) from exc
        return [dataclasses.asdict(result) for result in results]

    @http.post("/v1/chat/completions")
    async def chat_http(self, request: ChatCompletionRequest) -> dict:
        result = await self.chat(request.messages, request.sampling_options())
        return chat_completion(result, self._model_name)
