"""The kinds of failure a call can end with. Every package's call errors subclass one of
them, so the gateway maps these kinds to statuses and never needs another package's
classes. Messages say what to change; ``reason`` is the stable name clients match on."""

from __future__ import annotations

from typing import ClassVar


class ServeError(Exception):
    """Base of the errors a call can end with."""

    reason: ClassVar[str] = "INTERNAL"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        # Errors cross Ray between replicas by pickle; subclasses' constructors take
        # other arguments than their message, so rebuild from the state instead.
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(kind: type[ServeError], args: tuple, state: dict) -> ServeError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


def failure(exc: BaseException) -> str:
    """What went wrong, fit for a client's message: a service error's own message, else
    only the type (another error's text may be a remote traceback, with hosts and
    paths)."""
    while (cause := getattr(exc, "cause", None)) is not None:  # Ray's wrapper of a remote error
        exc = cause
    return str(exc) if isinstance(exc, ServeError) else type(exc).__name__


class InvalidInputError(ServeError, ValueError):
    """The call cannot be served as asked; the message says what to change."""

    reason = "INVALID_REQUEST"


class TooLongError(InvalidInputError):
    """The input (plus what may be generated) does not fit the model's context."""

    reason = "INPUT_TOO_LONG"


class NotFoundError(ServeError, LookupError):
    """The call names something that is not served; ``resource`` is (type, name)."""

    reason = "NOT_FOUND"

    def __init__(self, message: str, resource: tuple[str, str]) -> None:
        super().__init__(message)
        self.resource = resource


class OverloadedError(ServeError):
    """A bounded resource is full: back-pressure, retry shortly."""

    reason = "OVERLOADED"


class UnavailableError(ServeError):
    """A part of the service cannot take the call now (starting, restarting, gone);
    retry shortly."""

    reason = "WORKER_UNAVAILABLE"


class InternalError(ServeError, RuntimeError):
    """The server failed the call for a reason its message states (no internals in it);
    the operator has something to fix."""
