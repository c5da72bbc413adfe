"""What each failure of a call tells the client: exceptions -> ``CallError``.

Errors raised in another replica arrive wrapped by Ray (an instance of both
``RayTaskError`` and the original class, whose text is a traceback); the client gets the
original's message, never a traceback.
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

from alora_serve.disagg.leases import TooManyLeasesError
from alora_serve.disagg.remote_prefixes import PrefillUnavailableError
from alora_serve.engine.errors import InvalidRequestError, PromptTooLongError
from alora_serve.gateway.admission import OverloadedError
from alora_serve.gateway.auth import AuthenticationError, PermissionDeniedError
from alora_serve.gateway.status import CallError
from alora_serve.intrinsics.catalog import UnknownIntrinsicError
from alora_serve.intrinsics.rewrite import IntrinsicInputError
from alora_serve.intrinsics.runner import InputTooLongError
from alora_serve.kv.block_pool import StoreFullError
from alora_serve.topology.errors import WorkerUnavailableError

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
                "INVALID_REQUEST",
                _validation_summary(exc),
                field_violations=tuple(
                    (".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()
                ),
            )
        case AuthenticationError():
            return CallError(Code.UNAUTHENTICATED, "INVALID_TOKEN", message)
        case PermissionDeniedError():
            return CallError(Code.PERMISSION_DENIED, "INTRINSIC_NOT_ALLOWED", message)
        case UnknownIntrinsicError():
            return CallError(
                Code.NOT_FOUND, "UNKNOWN_INTRINSIC", message, resource=("intrinsic", exc.name)
            )
        case InputTooLongError() | PromptTooLongError():
            return CallError(Code.RESOURCE_EXHAUSTED, "INPUT_TOO_LONG", message)
        case IntrinsicInputError():
            return CallError(Code.INVALID_ARGUMENT, "INVALID_INTRINSIC_INPUT", message)
        case InvalidRequestError():
            return CallError(Code.INVALID_ARGUMENT, "INVALID_REQUEST", message)
        case OverloadedError() | BackPressureError() | TooManyLeasesError() | StoreFullError():
            return CallError(
                Code.RESOURCE_EXHAUSTED, "OVERLOADED", message, retry_after_s=RETRY_AFTER_S
            )
        case (
            WorkerUnavailableError()
            | PrefillUnavailableError()
            | RayActorError()
            | DeploymentUnavailableError()
            | ReplicaUnavailableError()
        ):
            return CallError(
                Code.UNAVAILABLE, "WORKER_UNAVAILABLE", message, retry_after_s=RETRY_AFTER_S
            )
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


def _original(exc: BaseException) -> BaseException:
    while isinstance(exc, RayTaskError) and getattr(exc, "cause", None) is not None:
        exc = exc.cause
    return exc


def _validation_summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) or "request"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
