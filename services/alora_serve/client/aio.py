"""The asyncio client (grpc.aio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
from alora.v1 import intrinsics_pb2 as pb
from alora.v1 import intrinsics_pb2_grpc

from alora_serve.client import requests as rq
from alora_serve.client.channel import ClientCore, ClientTLS
from alora_serve.client.errors import AloraError
from alora_serve.client.requests import DocumentLike, MessageLike


class AsyncAloraClient:
    """AloraClient's API with async methods. Create it in the event loop that uses it (a
    grpc.aio channel belongs to one loop)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLS | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
    ) -> None:
        self._core = ClientCore(
            target, token=token, tls=tls, timeout_s=timeout_s, max_attempts=max_attempts
        )
        self._channel = self._core.aio_channel()
        self._stub = intrinsics_pb2_grpc.IntrinsicsStub(self._channel)

    async def __aenter__(self) -> AsyncAloraClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def list_intrinsics(self, *, timeout_s: float | None = None) -> list[pb.IntrinsicInfo]:
        response = await self._unary(self._stub.ListIntrinsics, rq.list_request(), timeout_s)
        return list(response.intrinsics)

    async def run_intrinsic(
        self,
        intrinsic: str,
        messages: Sequence[MessageLike],
        documents: Sequence[DocumentLike] = (),
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> pb.IntrinsicResult:
        request = rq.run_intrinsic_request(intrinsic, messages, documents, arguments)
        return await self._unary(self._stub.RunIntrinsic, request, timeout_s)

    async def run_intrinsics(
        self,
        intrinsics: Sequence[str],
        messages: Sequence[MessageLike],
        documents: Sequence[DocumentLike] = (),
        arguments: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> list[pb.IntrinsicResult]:
        """Results in the order of ``intrinsics``; ``arguments``: name -> its arguments."""
        request = rq.run_intrinsics_request(intrinsics, messages, documents, arguments)
        return list((await self._unary(self._stub.RunIntrinsics, request, timeout_s)).results)

    def generate(
        self,
        messages: Sequence[MessageLike],
        *,
        max_tokens: int | None = None,  # None: the server's default
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[pb.GenerateChunk]:
        """``async for`` the assistant turn as it is generated (the deadline covers the whole
        stream). The call starts on the first iteration; ``aclose()`` cancels it."""
        request = rq.generate_request(
            messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        return self._stream(request, self._core.timeout(timeout_s))

    async def prefill_conversation(
        self,
        intrinsics: Sequence[str],
        messages: Sequence[MessageLike],
        documents: Sequence[DocumentLike] = (),
        *,
        timeout_s: float | None = None,
    ) -> int:
        """Prompt tokens of the conversation (with the intrinsics' instructions) whose base KV
        is now kept."""
        request = rq.prefill_request(intrinsics, messages, documents)
        response = await self._unary(self._stub.PrefillConversation, request, timeout_s)
        return response.kept_prompt_tokens

    async def _unary(
        self, method: Callable[..., Any], request: Any, timeout_s: float | None
    ) -> Any:
        timeout = self._core.timeout(timeout_s)
        try:
            return await method(request, timeout=timeout, metadata=self._core.metadata)
        except grpc.RpcError as e:
            raise AloraError.from_rpc_error(e) from e

    async def _stream(
        self, request: pb.GenerateRequest, timeout: float
    ) -> AsyncIterator[pb.GenerateChunk]:
        call = self._stub.Generate(request, timeout=timeout, metadata=self._core.metadata)
        try:
            async for chunk in call:
                yield chunk
        except grpc.RpcError as e:
            raise AloraError.from_rpc_error(e) from e
        finally:
            call.cancel()
