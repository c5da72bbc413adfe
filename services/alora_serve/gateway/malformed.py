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
    """For the API's unary calls and its server-streaming calls written with
    ``context.write`` (coroutines, as the servicer's are)."""

    async def intercept_service(self, continuation: Callable, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(API_PREFIX):
            return handler
        parse = _lenient(handler.request_deserializer)
        if handler.unary_unary is not None:
            make, behaviour = grpc.unary_unary_rpc_method_handler, handler.unary_unary
        elif handler.unary_stream is not None:
            make, behaviour = grpc.unary_stream_rpc_method_handler, handler.unary_stream
        else:
            return handler
        return make(_checked(behaviour), parse, handler.response_serializer)


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def lenient(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Malformed(str(exc))

    return lenient


def _checked(behaviour: Callable) -> Callable:
    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await abort(context, request.error())
        return await behaviour(request, context)

    return checked
