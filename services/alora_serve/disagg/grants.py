"""What the prefill service hands a decode worker: a lease on a stored prefix."""

from __future__ import annotations

from dataclasses import dataclass

from alora_serve.kv.fingerprint import KVFingerprint
from alora_serve.kv.orders import LoadOrder


@dataclass(frozen=True)
class LeaseGrant:
    """The base KV of a prefix, pinned in the prefill service's store until released (or
    until the lease expires). ``order.arena`` is the store's path on ``host``."""

    lease_id: int
    order: LoadOrder
    host: str
    fingerprint: KVFingerprint
    computed_tokens: int = 0  # of the prefix, computed by the service to grant this lease

    def load_order(self) -> LoadOrder:
        return self.order
