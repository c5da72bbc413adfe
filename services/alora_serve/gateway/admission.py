"""Bounding the calls the gateway serves at once: past the limit a call is refused at
once (RESOURCE_EXHAUSTED with a retry delay) instead of queueing without bound. The
deployments behind it bound their own queues too (Ray Serve's max_queued_requests)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from alora_serve.errors import OverloadedError, TooLongError

DEFAULT_MAX_IN_FLIGHT = 64


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.rejected: Counter[str] = Counter()  # calls refused for lack of room, by reason
        self.finished: Counter[tuple[str, str]] = Counter()  # (method, status code name)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_flight >= self.limit:
            raise OverloadedError(
                f"the server is serving its limit of {self.limit} calls; retry shortly"
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def record(self, method: str, code: str, reason: str = "") -> None:
        """A finished call; refusals (RESOURCE_EXHAUSTED: this limit, or a bound behind
        it) count by ``reason`` too."""
        self.finished[(method, code)] += 1
        if code == "RESOURCE_EXHAUSTED" and reason != TooLongError.reason:  # not back-pressure
            self.rejected[reason or "UNKNOWN"] += 1
