from __future__ import annotations

import logging
import traceback

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from pydantic import ValidationError
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError

from alora_serve.engine.errors import PromptTooLongError, UnknownAdapterError
from alora_serve.gateway.admission import OverloadedError
from alora_serve.gateway.auth import AuthenticationError, PermissionDeniedError
from alora_serve.gateway.failures import RETRY_AFTER_S, to_call_error
from alora_serve.gateway.http_api import http_error
from alora_serve.gateway.status import DETAILS_KEY, DOMAIN, CallError
from alora_serve.intrinsics.call import IntrinsicInputError, IntrinsicRequest
from alora_serve.intrinsics.catalog import UnknownIntrinsicError
from alora_serve.intrinsics.runner import InputTooLongError, IntrinsicOutputError
from alora_serve.kv.store.block_pool import StoreFullError
from alora_serve.prefill.leases import TooManyLeasesError
from alora_serve.topology.handles import WorkerUnavailableError
from alora_serve.transfer.remote_prefixes import PrefillUnavailableError

Code = grpc.StatusCode
DETAIL_TYPES = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RetryInfo,
)


def decode(error: CallError) -> tuple[status_pb2.Status, dict[str, Message]]:
    """The google.rpc.Status a client reads from the trailers, and its details by type."""
    ((key, value),) = error.trailing_metadata()
    assert key == DETAILS_KEY
    status = status_pb2.Status.FromString(value)
    details: dict[str, Message] = {}
    for packed in status.details:
        (kind,) = [k for k in DETAIL_TYPES if packed.Is(k.DESCRIPTOR)]
        detail = kind()
        assert packed.Unpack(detail)
        assert kind.__name__ not in details
        details[kind.__name__] = detail
    assert status.code == error.code.value[0]
    assert status.message == error.message
    info = details["ErrorInfo"]
    assert (info.domain, info.reason) == (DOMAIN, error.reason)
    return status, details


def ray_wrapped(cause: BaseException) -> BaseException:
    """``cause`` as a caller of a Ray actor gets it: raised in another process."""
    try:
        raise cause
    except BaseException:
        text = traceback.format_exc()
    wrapped = RayTaskError(
        "Worker.run", text, cause, proctitle="ray::Worker.run", pid=4242, ip="10.0.0.7"
    )
    return wrapped.as_instanceof_cause()


def invalid_request() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        IntrinsicRequest.model_validate(
            {"messages": [{"role": "robot", "content": "hunter2-secret-content"}], "x": 1}
        )
    return caught.value


def test_validation_errors_are_invalid_argument_with_field_violations() -> None:
    error = to_call_error(invalid_request())
    assert (error.code, error.reason) == (Code.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert error.message.startswith("messages.0.role: Input should be 'system'")
    assert error.message.endswith("(and 1 more)")
    assert "hunter2" not in error.message
    assert error.retry_after_s is None
    _, details = decode(error)
    assert set(details) == {"ErrorInfo", "BadRequest"}
    violations = [(v.field, v.description) for v in details["BadRequest"].field_violations]
    assert [field for field, _ in violations] == ["messages.0.role", "x"]
    assert "Extra inputs are not permitted" in violations[1][1]


def test_unknown_intrinsics_are_not_found_with_resource_info() -> None:
    error = to_call_error(UnknownIntrinsicError("nope", ["citations", "answerability"]))
    assert (error.code, error.reason) == (Code.NOT_FOUND, "UNKNOWN_INTRINSIC")
    assert error.message == "unknown intrinsic 'nope'; installed: ['answerability', 'citations']"
    _, details = decode(error)
    assert set(details) == {"ErrorInfo", "ResourceInfo"}
    resource = details["ResourceInfo"]
    assert (resource.resource_type, resource.resource_name) == ("intrinsic", "nope")
    assert resource.description == error.message


@pytest.mark.parametrize(
    "exc",
    [
        InputTooLongError("the prompt has 9000 tokens; at most 8192 fit"),
        PromptTooLongError("the prompt has 9000 tokens; at most 8192 fit"),
    ],
)
def test_too_long_inputs_are_resource_exhausted_without_retry(exc: Exception) -> None:
    error = to_call_error(exc)
    assert (error.code, error.reason) == (Code.RESOURCE_EXHAUSTED, "INPUT_TOO_LONG")
    assert error.message == str(exc)
    _, details = decode(error)
    assert set(details) == {"ErrorInfo"}  # retrying the same input cannot help


def test_other_intrinsic_input_errors_are_invalid_argument() -> None:
    error = to_call_error(IntrinsicInputError("give the argument 'requirement'"))
    assert (error.code, error.reason) == (Code.INVALID_ARGUMENT, "INVALID_INTRINSIC_INPUT")
    assert error.message == "give the argument 'requirement'"


@pytest.mark.parametrize(
    ("exc", "code", "reason"),
    [
        (OverloadedError("at the limit"), Code.RESOURCE_EXHAUSTED, "OVERLOADED"),
        (TooManyLeasesError("every lease is taken"), Code.RESOURCE_EXHAUSTED, "TOO_MANY_LEASES"),
        (StoreFullError("every slot is pinned"), Code.RESOURCE_EXHAUSTED, "OVERLOADED"),
        (BackPressureError(10, 8), Code.RESOURCE_EXHAUSTED, "QUEUE_FULL"),
        (WorkerUnavailableError("no replica"), Code.UNAVAILABLE, "WORKER_UNAVAILABLE"),
        (PrefillUnavailableError("prefill down"), Code.UNAVAILABLE, "WORKER_UNAVAILABLE"),
        (RayActorError(error_msg="the actor died"), Code.UNAVAILABLE, "WORKER_UNAVAILABLE"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_retryable_failures_carry_retry_info(exc: Exception, code, reason: str) -> None:
    error = to_call_error(exc)
    assert (error.code, error.reason) == (code, reason)
    assert error.message == str(exc)
    assert error.retry_after_s == RETRY_AFTER_S
    _, details = decode(error)
    assert set(details) == {"ErrorInfo", "RetryInfo"}
    delay = details["RetryInfo"].retry_delay
    assert delay.ToNanoseconds() == int(RETRY_AFTER_S * 1e9)


def test_back_pressure_says_how_full_the_queue_was() -> None:
    assert "max_queued_requests=8" in to_call_error(BackPressureError(10, 8)).message


@pytest.mark.parametrize("exc", [TimeoutError(), TimeoutError("waited 30 s")])
def test_timeouts_are_deadline_exceeded(exc: Exception) -> None:
    error = to_call_error(exc)
    assert (error.code, error.reason) == (Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED")
    assert error.message == "the call's deadline passed"
    assert set(decode(error)[1]) == {"ErrorInfo"}


def test_authentication_and_permission_failures() -> None:
    error = to_call_error(AuthenticationError("the bearer token is not valid"))
    assert (error.code, error.reason) == (Code.UNAUTHENTICATED, "INVALID_TOKEN")
    assert error.message == "the bearer token is not valid"
    error = to_call_error(PermissionDeniedError("tenant 'acme' may not call ['x']"))
    assert (error.code, error.reason) == (Code.PERMISSION_DENIED, "INTRINSIC_NOT_ALLOWED")
    assert error.message == "tenant 'acme' may not call ['x']"
    assert set(decode(error)[1]) == {"ErrorInfo"}


def test_unexpected_failures_are_internal_and_hide_their_text(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="alora_serve.gateway.failures"):
        error = to_call_error(KeyError("postgres://admin:hunter2@db/prod"))
    assert (error.code, error.reason) == (Code.INTERNAL, "INTERNAL")
    assert error.message == "the server failed the call (KeyError)"
    assert "hunter2" not in error.message
    status, details = decode(error)
    assert "hunter2" not in str(status)
    assert set(details) == {"ErrorInfo"}
    # the operator still sees what happened
    assert any(record.exc_info for record in caplog.records)


def test_intrinsic_output_errors_are_internal_and_keep_their_message(caplog) -> None:
    exc = IntrinsicOutputError(
        "'citations' output reached its 64 token limit before its JSON was complete; "
        "raise max_completion_tokens in its io.yaml"
    )
    with caplog.at_level(logging.ERROR, logger="alora_serve.gateway.failures"):
        error = to_call_error(ray_wrapped(exc))
    assert (error.code, error.reason) == (Code.INTERNAL, "INVALID_INTRINSIC_OUTPUT")
    assert error.message == str(exc)
    assert set(decode(error)[1]) == {"ErrorInfo"}
    assert "io.yaml" not in caplog.text  # the log names the kind, not the message


def test_unknown_adapters_are_not_found_with_resource_info() -> None:
    error = to_call_error(UnknownAdapterError("nope", ["a"]))
    assert (error.code, error.reason) == (Code.NOT_FOUND, "UNKNOWN_ADAPTER")
    resource = decode(error)[1]["ResourceInfo"]
    assert (resource.resource_type, resource.resource_name) == ("adapter", "nope")


def test_call_errors_pass_through_unchanged() -> None:
    original = CallError(Code.FAILED_PRECONDITION, "NOT_READY", "warming up")
    assert to_call_error(original) is original


@pytest.mark.parametrize(
    ("cause", "code", "reason"),
    [
        (UnknownIntrinsicError("nope", ["a"]), Code.NOT_FOUND, "UNKNOWN_INTRINSIC"),
        (InputTooLongError("the prompt is too long"), Code.RESOURCE_EXHAUSTED, "INPUT_TOO_LONG"),
        (TooManyLeasesError("every lease is taken"), Code.RESOURCE_EXHAUSTED, "TOO_MANY_LEASES"),
        (BackPressureError(3, 2), Code.RESOURCE_EXHAUSTED, "QUEUE_FULL"),
        (WorkerUnavailableError("no replica"), Code.UNAVAILABLE, "WORKER_UNAVAILABLE"),
        (
            PermissionDeniedError("tenant 'a' may not"),
            Code.PERMISSION_DENIED,
            "INTRINSIC_NOT_ALLOWED",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_errors_from_other_processes_map_by_their_cause(cause, code, reason: str) -> None:
    wrapped = ray_wrapped(cause)
    assert isinstance(wrapped, RayTaskError)
    assert isinstance(wrapped, type(cause))
    assert "File " in str(wrapped)  # Ray's text for it is a traceback
    for exc in (wrapped, ray_wrapped(wrapped)):  # Ray nests errors passed along twice
        error = to_call_error(exc)
        assert (error.code, error.reason) == (code, reason)
        assert error.message == str(cause)
        assert "File " not in error.message
        assert "ray::Worker.run" not in error.message
        assert "4242" not in error.message


def test_a_wrapped_validation_error_keeps_its_field_violations() -> None:
    cause = invalid_request()
    wrapped = ray_wrapped(cause)
    assert isinstance(wrapped, RayTaskError)
    error = to_call_error(wrapped)
    assert (error.code, error.reason) == (Code.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert [field for field, _ in error.field_violations] == ["messages.0.role", "x"]
    assert error.message == to_call_error(cause).message


def test_an_unexpected_wrapped_error_names_the_cause_type_only() -> None:
    error = to_call_error(ray_wrapped(ZeroDivisionError("secret detail")))
    assert error.code == Code.INTERNAL
    assert error.message == "the server failed the call (ZeroDivisionError)"


def test_call_error_text_and_metadata_details() -> None:
    error = CallError(
        Code.RESOURCE_EXHAUSTED,
        "OVERLOADED",
        "retry shortly",
        retry_after_s=2.5,
        metadata={"limit": "64"},
    )
    assert str(error) == "RESOURCE_EXHAUSTED OVERLOADED: retry shortly"
    status, details = decode(error)
    assert status.code == 8
    assert dict(details["ErrorInfo"].metadata) == {"limit": "64"}
    assert details["RetryInfo"].retry_delay.ToMilliseconds() == 2500


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (UnknownIntrinsicError("nope", []), 404, None),
        (InputTooLongError("too long"), 413, None),
        (PromptTooLongError("too long"), 413, None),
        (OverloadedError("busy"), 429, "1"),
        (BackPressureError(3, 2), 429, "1"),
        (WorkerUnavailableError("no replica"), 503, "1"),
        (AuthenticationError("the bearer token is not valid"), 401, None),
        (PermissionDeniedError("tenant 'a' may not"), 403, None),
        (TimeoutError(), 504, None),
        (IntrinsicInputError("bad"), 400, None),
        (RuntimeError("secret detail"), 500, None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_http_errors_use_the_same_mapping(exc, status: int, retry_after: str | None) -> None:
    http = http_error(exc)
    assert http.status_code == status
    assert http.detail == to_call_error(exc).message
    assert "secret detail" not in http.detail
    headers = dict(http.headers or {})
    assert headers.pop("WWW-Authenticate", None) == ("Bearer" if status == 401 else None)
    assert headers == ({"Retry-After": retry_after} if retry_after else {})


def test_http_errors_of_wrapped_causes() -> None:
    http = http_error(ray_wrapped(UnknownIntrinsicError("nope", ["a"])))
    assert (http.status_code, http.detail) == (404, "unknown intrinsic 'nope'; installed: ['a']")
