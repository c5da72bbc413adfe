"""A failed call as one exception, with the rich details the server sends (google.rpc.Status
in the ``grpc-status-details-bin`` trailer: ErrorInfo, BadRequest, ResourceInfo, RetryInfo).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"  # the server's id of the call, in its initial metadata


class AloraError(Exception):
    """A call that failed: its status code and message, and what the server said about it."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        retry_after_s: float | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
        resource: tuple[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason  # ErrorInfo.reason: stable, UPPER_SNAKE
        self.retry_after_s = retry_after_s  # RetryInfo: when trying again makes sense
        self.field_violations = list(field_violations or ())  # BadRequest: (field, what is wrong)
        self.resource = resource  # ResourceInfo: (type, name) of what was not found
        self.metadata = dict(metadata or {})  # ErrorInfo.metadata
        self.request_id = request_id  # what the server's logs know the call by
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code.name}"
        if self.reason:
            text += f" {self.reason}"
        text += f": {self.message}"
        for field, description in self.field_violations:
            text += f"\n  {field}: {description}"
        if self.resource is not None:
            text += f"\n  {self.resource[0]}: {self.resource[1]!r}"
        if self.retry_after_s is not None:
            text += f"\n  retry after {self.retry_after_s:g} s"
        if self.request_id:
            text += f"\n  request id {self.request_id}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.code, self.message, self._details()))

    def _details(self) -> dict[str, Any]:
        names = ("reason", "retry_after_s", "field_violations", "resource", "metadata")
        names += ("request_id",)
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> AloraError:
        """From what grpc raised (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
        code = _call(error, "code") or grpc.StatusCode.UNKNOWN
        message = _call(error, "details") or str(error)
        status = _status(_call(error, "trailing_metadata") or ())
        request_id = dict(_call(error, "initial_metadata") or ()).get(REQUEST_ID_KEY)
        if status is None:
            return cls(code, message, request_id=request_id)
        return cls(code, status.message or message, **_decode(status), request_id=request_id)


def _rebuild(
    kind: type[AloraError], code: grpc.StatusCode, message: str, details: dict[str, Any]
) -> AloraError:
    return kind(code, message, **details)


def _call(error: grpc.RpcError, method: str) -> Any:
    getter = getattr(error, method, None)
    return getter() if callable(getter) else None


def _status(trailers: Iterable[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:  # malformed: the code and message still stand
                return None
    return None


def _decode(status: status_pb2.Status) -> dict[str, Any]:
    """AloraError's keyword arguments from the details packed in ``status``."""
    found: dict[str, Any] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.update(reason=info.reason or None, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.setdefault("field_violations", []).extend(
                (v.field, v.description) for v in bad.field_violations
            )
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            found["resource"] = (resource.resource_type, resource.resource_name)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found["retry_after_s"] = retry.retry_delay.ToNanoseconds() / 1e9
    return found
