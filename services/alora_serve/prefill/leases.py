"""Leases the prefill service grants on stored prefixes: bounded, and expiring.

A decode worker holds a lease (its prefix's blocks stay pinned) while its adapter
request reads the blocks, and renews it while it holds it longer than the TTL (a long
decode). A worker that dies neither releases nor renews: its leases expire after the TTL,
so a dead reader cannot pin the store forever.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from alora_serve.errors import OverloadedError

Held = TypeVar("Held")


@dataclass(frozen=True)
class LeaseLimits:
    max_leases: int = 256
    ttl_s: float = 60.0


DEFAULT_LEASE_LIMITS = LeaseLimits()


class TooManyLeasesError(OverloadedError):
    """Every lease is taken: back-pressure, retry later."""

    reason = "TOO_MANY_LEASES"


@dataclass
class _Entry(Generic[Held]):
    held: Held
    expires_at: float


class LeaseTable(Generic[Held]):
    def __init__(
        self, max_leases: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_leases < 1 or ttl_s <= 0:
            raise ValueError("a lease table needs max_leases >= 1 and ttl_s > 0")
        self.max_leases = max_leases
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[int, _Entry[Held]] = {}
        self.granted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def check_room(self) -> None:
        if len(self._entries) >= self.max_leases:
            raise TooManyLeasesError(
                f"all {self.max_leases} prefix leases are held by in-flight calls; retry later"
            )

    def add(self, held: Held) -> int:
        self.check_room()
        # Random ids: a reader can never release another replica's lease by accident.
        lease_id = secrets.randbits(63)
        while lease_id in self._entries:
            lease_id = secrets.randbits(63)
        self._entries[lease_id] = _Entry(held, self._clock() + self.ttl_s)
        self.granted += 1
        return lease_id

    def get(self, lease_id: int) -> Held | None:
        entry = self._entries.get(lease_id)
        return entry.held if entry is not None else None

    def renew(self, lease_id: int) -> bool:
        """Extend a lease by the TTL from now; False if it is no longer held."""
        entry = self._entries.get(lease_id)
        if entry is not None:
            entry.expires_at = self._clock() + self.ttl_s
        return entry is not None

    def pop(self, lease_id: int) -> Held | None:
        entry = self._entries.pop(lease_id, None)
        return entry.held if entry is not None else None

    def pop_expired(self) -> list[Held]:
        now = self._clock()
        expired = [i for i, e in self._entries.items() if e.expires_at <= now]
        self.expired += len(expired)
        return [self._entries.pop(i).held for i in expired]
