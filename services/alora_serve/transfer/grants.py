"""The contract between the prefill service and decode workers: what a worker asks
(``PrefillClient``) and what the service hands it (a ``LeaseGrant`` on a stored prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from alora_serve.kv.fingerprint import KVFingerprint
from alora_serve.kv.orders import LoadOrder


@dataclass(frozen=True)
class LeaseGrant:
    """The base KV of a prefix, pinned in the prefill service's store until released (or
    until the lease expires: ``ttl_s`` after it was granted or last renewed; None: never).
    ``order.arena`` is the store's path on ``host``."""

    lease_id: int
    order: LoadOrder
    host: str
    fingerprint: KVFingerprint
    computed_tokens: int = 0  # of the prefix, computed by the service to grant this lease
    ttl_s: float | None = None

    def load_order(self) -> LoadOrder:
        return self.order


class PrefillClient(Protocol):
    """The prefill service as a decode worker reaches it (in process, or a Serve handle)."""

    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant: ...

    async def release(self, lease_id: int, unusable: bool = False) -> None: ...

    async def renew(self, lease_ids: Sequence[int]) -> list[int]:
        """Extend leases still held by a reader; returns those no longer known (released
        or expired)."""
        ...

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> torch.Tensor: ...
