"""Errors of the serving topology."""

from __future__ import annotations


class WorkerUnavailableError(RuntimeError):
    """No replica of a worker could take the call; retry later."""
