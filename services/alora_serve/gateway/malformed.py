"""Requests whose bytes do not parse as their message: gRPC's own answer is UNKNOWN; the
API promises INVALID_ARGUMENT, naming the message type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from alora_serve.gateway.status import CallError, abort

API_PREFIX = "/alora.v1."


@dataclass(frozen=True)
class _Malformed:
    problem: str

    def error(self) -> CallError:
        return CallError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "MALFORMED_MESSAGE",
            f"the request does not parse: {self.problem}; send a serialized message of the "
            "method's request type (see protos/alora/v1)",
        )


class MalformedRequests(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation: Callable, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(API_PREFIX):
            return handler
        parse = _lenient(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _checked_unary(handler.unary_unary), parse, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _checked_stream(handler.unary_stream), parse, handler.response_serializer
            )
        return handler


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def lenient(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Malformed(str(exc))

    return lenient


def _checked_unary(behaviour: Callable) -> Callable:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await abort(context, request.error())
        return await behaviour(request, context)

    return unary


def _checked_stream(behaviour: Callable) -> Callable:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await abort(context, request.error())
        async for response in behaviour(request, context):
            yield response

    return stream
