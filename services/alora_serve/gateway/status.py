"""Errors as gRPC statuses with rich details (google.rpc.Status in the
``grpc-status-details-bin`` trailer, as grpcio-status encodes it):

- every error carries ``ErrorInfo`` (domain "alora-serve", a stable UPPER_SNAKE reason);
- bad input adds ``BadRequest`` field violations; an unknown intrinsic ``ResourceInfo``;
- RESOURCE_EXHAUSTED and UNAVAILABLE add ``RetryInfo``: when trying again makes sense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "alora-serve"
DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class CallError(Exception):
    """What the client is told: a status code, a message saying what to fix, details."""

    code: grpc.StatusCode
    reason: str
    message: str
    retry_after_s: float | None = None
    field_violations: tuple[tuple[str, str], ...] = ()  # (field path, what is wrong)
    resource: tuple[str, str] | None = None  # (type, name) of what was not found
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    def status_details(self) -> status_pb2.Status:
        details = [
            error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        ]
        if self.field_violations:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.field_violations
                    ]
                )
            )
        if self.resource is not None:
            kind, name = self.resource
            details.append(
                error_details_pb2.ResourceInfo(
                    resource_type=kind, resource_name=name, description=self.message
                )
            )
        if self.retry_after_s is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(info)
        packed = []
        for detail in details:
            entry = any_pb2.Any()
            entry.Pack(detail)
            packed.append(entry)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((DETAILS_KEY, self.status_details().SerializeToString()),)


async def abort(context: grpc.aio.ServicerContext, error: CallError) -> None:
    """End the call with ``error`` (raises, as ``context.abort`` does)."""
    await context.abort(error.code, error.message, error.trailing_metadata())
