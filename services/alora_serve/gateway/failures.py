"""What each failure of a call tells the client: exceptions -> ``CallError``.

The service's errors arrive as kinds of ``alora_serve.errors`` (each carries its stable
reason); Ray's and pydantic's as themselves. Errors raised in another replica arrive
wrapped by Ray (an instance of both ``RayTaskError`` and the original class, whose text
is a traceback); the client gets the original's message, never a traceback.
"""

from __future__ import annotations

import logging

import grpc
from pydantic import ValidationError
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RequestCancelledError,
)

from alora_serve.errors import (
    InternalError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    TooLongError,
    UnavailableError,
)
from alora_serve.gateway.auth import AuthenticationError, PermissionDeniedError
from alora_serve.gateway.status import CallError

RETRY_AFTER_S = 1.0
logger = logging.getLogger(__name__)
Code = grpc.StatusCode


def to_call_error(exc: BaseException) -> CallError:
    exc = _original(exc)
    message = str(exc)
    match exc:
        case CallError():
            return exc
        case ValidationError():
            return CallError(
                Code.INVALID_ARGUMENT,
                InvalidInputError.reason,
                _validation_summary(exc),
                field_violations=tuple(
                    (".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()
                ),
            )
        case AuthenticationError():
            return CallError(Code.UNAUTHENTICATED, "INVALID_TOKEN", message)
        case PermissionDeniedError():
            return CallError(Code.PERMISSION_DENIED, "INTRINSIC_NOT_ALLOWED", message)
        case NotFoundError():
            return CallError(Code.NOT_FOUND, exc.reason, message, resource=exc.resource)
        case TooLongError():  # retrying the same input cannot help: no retry delay
            return CallError(Code.RESOURCE_EXHAUSTED, exc.reason, message)
        case InvalidInputError():
            return CallError(Code.INVALID_ARGUMENT, exc.reason, message)
        case OverloadedError():
            return _retryable(Code.RESOURCE_EXHAUSTED, exc.reason, message)
        case BackPressureError():  # a deployment's queue is full (Serve's bound)
            return _retryable(Code.RESOURCE_EXHAUSTED, "QUEUE_FULL", message)
        case (
            UnavailableError()
            | RayActorError()
            | DeploymentUnavailableError()
            | ReplicaUnavailableError()
        ):
            return _retryable(Code.UNAVAILABLE, UnavailableError.reason, message)
        case InternalError():
            logger.error("call failed: %s (%s)", exc.reason, type(exc).__name__)
            return CallError(Code.INTERNAL, exc.reason, message)
        case RequestCancelledError():
            return CallError(Code.CANCELLED, "CANCELLED", "the call was cancelled")
        case TimeoutError():
            return CallError(
                Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the call's deadline passed"
            )
    logger.error("call failed unexpectedly", exc_info=exc)
    return CallError(
        Code.INTERNAL, "INTERNAL", f"the server failed the call ({type(exc).__name__})"
    )


def _retryable(code: grpc.StatusCode, reason: str, message: str) -> CallError:
    return CallError(code, reason, message, retry_after_s=RETRY_AFTER_S)


def _original(exc: BaseException) -> BaseException:
    while isinstance(exc, RayTaskError) and getattr(exc, "cause", None) is not None:
        exc = exc.cause
    return exc


def _validation_summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) or "request"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
