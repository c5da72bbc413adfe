"""Errors of the serving topology."""

from __future__ import annotations


class WorkerUnavailableError(RuntimeError):
    """No replica of a worker could take the call; retry later."""


class CallTimeoutError(WorkerUnavailableError):
    """A deployment did not answer a call in time (the message names which, from where,
    and after how long)."""
