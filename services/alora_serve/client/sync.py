"""The blocking client."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
from alora.v1 import intrinsics_pb2 as pb
from alora.v1 import intrinsics_pb2_grpc

from alora_serve.client import requests as rq
from alora_serve.client.channel import ClientCore, ClientTLS
from alora_serve.client.errors import AloraError
from alora_serve.client.requests import DocumentLike, MessageLike


class AloraClient:
    """alora-serve's API over one channel. Unavailable servers are retried (idempotent
    calls, ``max_attempts`` in all); every call has a deadline; failures raise AloraError."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLS | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor | Any] = (),
    ) -> None:
        """``interceptors``: gRPC client interceptors every call goes through (e.g. to
        time calls, as the Locust load test does)."""
        self._core = ClientCore(
            target, token=token, tls=tls, timeout_s=timeout_s, max_attempts=max_attempts
        )
        self._channel = self._core.sync_channel()
        calls = grpc.intercept_channel(self._channel, *interceptors)
        self._stub = intrinsics_pb2_grpc.IntrinsicsStub(calls)

    def __enter__(self) -> AloraClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def list_intrinsics(self, *, timeout_s: float | None = None) -> list[pb.IntrinsicInfo]:
        response = self._unary(self._stub.ListIntrinsics, rq.list_request(), timeout_s)
        return list(response.intrinsics)

    def run_intrinsic(
        self,
        intrinsic: str,
        messages: Sequence[MessageLike],
        documents: Sequence[DocumentLike] = (),
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> pb.IntrinsicResult:
        request = rq.run_intrinsic_request(intrinsic, messages, documents, arguments)
        return self._unary(self._stub.RunIntrinsic, request, timeout_s)

    def run_intrinsics(
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
        return list(self._unary(self._stub.RunIntrinsics, request, timeout_s).results)

    def generate(
        self,
        messages: Sequence[MessageLike],
        *,
        max_tokens: int | None = None,  # None: the server's default
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[pb.GenerateChunk]:
        """The assistant turn as it is generated (the deadline covers the whole stream).
        The call starts on the first ``next``; closing the iterator cancels it."""
        request = rq.generate_request(
            messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        return self._stream(request, self._core.timeout(timeout_s))

    def prefill_conversation(
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
        response = self._unary(self._stub.PrefillConversation, request, timeout_s)
        return response.kept_prompt_tokens

    def _unary(self, method: Callable[..., Any], request: Any, timeout_s: float | None) -> Any:
        timeout = self._core.timeout(timeout_s)
        try:
            return method(request, timeout=timeout, metadata=self._core.metadata)
        except grpc.RpcError as e:
            raise AloraError.from_rpc_error(e) from e

    def _stream(self, request: pb.GenerateRequest, timeout: float) -> Iterator[pb.GenerateChunk]:
        call = self._stub.Generate(request, timeout=timeout, metadata=self._core.metadata)
        try:
            yield from call
        except grpc.RpcError as e:
            raise AloraError.from_rpc_error(e) from e
        finally:
            call.cancel()
