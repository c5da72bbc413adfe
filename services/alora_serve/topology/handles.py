"""Calls from one deployment to another: each with its own Serve request identity, a
timeout that says what timed out, and cancellation that reaches the callee.

Why a fresh identity: a call made while a replica serves a request inherits that
request's internal id (Ray Serve 2.60). Serve's request router indexes pending requests
by that id, so when one request makes several concurrent calls to the same deployment
under a per-request router (ConsistentHashRouter, and our KVLocalityRouter), only the
first is ever given a replica and the others wait forever. A composed intrinsic call
leases several prefixes from the prefill service at once: it stalled until the lease
timeout. The log request id is kept (the front door's, see
``alora_serve.observability.context``), so the logs still follow one call through.

Methods that continue a trace (``@hop``) get the caller's span context as a keyword.

Serve cancels children with their parent only through that parent id, and awaiting a
response does not cancel it, so ``answer`` cancels its call itself when the caller gives
up (deadline, disconnect) or the timeout passes.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ray import serve
from ray.serve import context as serve_context
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from alora_serve.errors import UnavailableError
from alora_serve.observability import tracing
from alora_serve.observability.context import current_request_id

Method = TypeVar("Method", bound=Callable[..., Awaitable[Any]])


class WorkerUnavailableError(UnavailableError):
    """No replica of a worker could take the call; retry later."""


class CallTimeoutError(WorkerUnavailableError):
    """A deployment did not answer a call in time (the message names which, from where,
    and after how long)."""


def _call(
    handle: DeploymentHandle,
    method: str,
    *args: Any,
    session: str | None = None,
    traced: bool = False,
) -> DeploymentResponse:
    """Start ``handle.method(*args)`` under its own request identity (``session``: the
    routing key of KV-locality and session-affinity routers; ``traced``: the method is
    a ``@hop``)."""
    target = handle.options(session_id=session) if session else handle
    kwargs = {"trace_context": tracing.carrier()} if traced else {}
    return _with_own_identity(getattr(target, method).remote, *args, **kwargs)


def stream(handle: DeploymentHandle, method: str, *args: Any) -> DeploymentResponseGenerator:
    """Start a streaming ``handle.method(*args)`` under its own request identity."""
    return _with_own_identity(getattr(handle.options(stream=True), method).remote, *args)


async def answer(
    handle: DeploymentHandle,
    method: str,
    *args: Any,
    timeout_s: float,
    session: str | None = None,
    traced: bool = False,
) -> Any:
    """The result of ``handle.method(*args)``; the call is cancelled in the callee when
    the caller gives up, and fails with ``CallTimeoutError`` after ``timeout_s``."""
    response = _call(handle, method, *args, session=session, traced=traced)
    started = time.monotonic()
    try:
        return await asyncio.wait_for(response, timeout_s)
    except TimeoutError:
        response.cancel()
        raise CallTimeoutError(
            f"{handle.deployment_name}.{method}, called from {_caller()}, did not answer "
            f"within {time.monotonic() - started:.3g} s (its limit); retry later"
        ) from None
    except asyncio.CancelledError:
        response.cancel()
        raise


def hop(span_name: str) -> Callable[[Method], Method]:
    """A deployment method that continues the caller's trace in a span of its own."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        async def continued(self, *args: Any, trace_context: dict | None = None, **kwargs: Any):
            with tracing.span(span_name, trace_context):
                return await method(self, *args, **kwargs)

        return continued  # type: ignore[return-value]

    return decorate


def _with_own_identity(remote, *args: Any, **kwargs: Any):
    context = contextvars.copy_context()
    context.run(_new_request_identity)
    return context.run(remote, *args, **kwargs)


def _new_request_identity() -> None:
    parent = serve_context._get_serve_request_context()
    serve_context._serve_request_context.set(
        dataclasses.replace(
            parent,
            request_id=current_request_id.get() or parent.request_id,
            _internal_request_id=uuid.uuid4().hex,
            cancel_on_parent_request_cancel=False,
        )
    )


def _caller() -> str:
    try:
        return f"deployment {serve.get_replica_context().deployment}"
    except RayServeException:
        return "outside Serve"
