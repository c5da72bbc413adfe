"""What every HTTP call gets, whichever API (native or OpenAI-compatible): the body size
bound, authentication, an admission slot, accounting, and errors as HTTP statuses mapped
from the same kinds as gRPC's. The Ray Serve ingress (``alora_serve.topology.ingress``)
serves the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from alora_serve.errors import TooLongError
from alora_serve.gateway.admission import Admission
from alora_serve.gateway.auth import Principal, TokenTable
from alora_serve.gateway.failures import to_call_error
from alora_serve.gateway.openai.errors import OpenAIError
from alora_serve.gateway.reporting import log_call
from alora_serve.intrinsics.call import IntrinsicResult

# One error mapping for both APIs: the gRPC status a failure gets, as an HTTP status.
_HTTP_STATUS = {
    # 400: valid JSON for the schema, but not acceptable (FastAPI answers 422 when a body
    # does not fit the schema, naming each field).
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, and what to change")


_ERRORS = {
    400: "the request is not acceptable (the message says what to change), or its body is not JSON",
    401: "no valid bearer token (when the server requires tokens)",
    403: "the token may not call an intrinsic it named",
    404: "something the call names is not served (e.g. an intrinsic)",
    413: "the input does not fit the model's context, or the body is over the size limit",
    429: "the server is at its limit of calls at once; retry after Retry-After seconds",
    503: "a worker is unavailable or did not answer in time; retry later",
    504: "the call's deadline passed",
}


def error_responses(
    *statuses: int, body: type[BaseModel] = ErrorBody
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the error statuses a route may answer (all with ``body``)."""
    return {s: {"model": body, "description": _ERRORS[s]} for s in statuses}


class BodyLimit:
    """ASGI middleware: a request body over the app's ``state.max_body_bytes`` gets 413
    before it is read whole (for HTTP what ``max_message_bytes`` is for gRPC), its body
    in OpenAI's error shape on ``openai_paths``."""

    def __init__(self, app: Any, openai_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.openai_paths = openai_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = scope["app"].state.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        openai_shape = scope["path"] in self.openai_paths
        if not declared.isdigit() or int(declared) > limit:
            return await _too_large(send, limit, openai_shape)
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(_too_large_message(limit))
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send, limit, openai_shape)


class _BodyTooLarge(TooLongError):
    """Raised into the app while it reads the body (routes that read it inside
    ``serving_http`` answer it as too long, 413, as any call error)."""


def _too_large_message(limit: int) -> str:
    return f"the request body is over {limit} bytes; send less"


async def _too_large(send: Any, limit: int, openai_shape: bool) -> None:
    message = _too_large_message(limit)
    body = OpenAIError(413, message).body() if openai_shape else {"detail": message}
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def result_to_json(result: IntrinsicResult) -> dict[str, Any]:
    """An intrinsic result as the HTTP API returns it (timings with their ``other_s``)."""
    body = dataclasses.asdict(result)
    body["timings"]["other_s"] = result.timings.other_s
    return body


def http_error(exc: BaseException) -> HTTPException:
    error = to_call_error(exc)
    status = 413 if error.reason == TooLongError.reason else _HTTP_STATUS.get(error.code, 500)
    headers = {}
    if error.retry_after_s:
        headers["Retry-After"] = f"{error.retry_after_s:.0f}"
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return HTTPException(status, error.message, headers or None)


@contextlib.asynccontextmanager
async def serving_http(
    route: str, request: Request, tokens: TokenTable, admission: Admission
) -> AsyncIterator[Principal]:
    """What the gRPC gateway does for each call, for HTTP: authenticate, take an
    admission slot (the same bound), count the call by status, and turn failures into
    statuses that say what to fix."""
    started, code, reason, tenant = time.perf_counter(), "OK", "", None
    try:
        principal = tokens.authenticate(request.headers.getlist("authorization"))
        tenant = principal.tenant
        with admission.slot():
            yield principal
    except (asyncio.CancelledError, GeneratorExit):  # the client went away
        code = "CANCELLED"
        raise
    except Exception as exc:
        error = to_call_error(exc)  # counted as gRPC counts it
        code, reason = error.code.name, error.reason
        raise http_error(exc) from exc
    finally:
        admission.record(route, code, reason)
        log_call(route, code, reason, time.perf_counter() - started, tenant)
