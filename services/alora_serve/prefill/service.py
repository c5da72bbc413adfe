"""The prefill service: a base-model engine that owns the KV of conversations.

It computes the base KV of prefixes (each block once, per tenant, reusing earlier turns'
blocks), keeps it in its bounded store and lends it to decode workers: same-host workers
read its shared-memory arena in place; others pull the blocks' bytes. Leases pin the
blocks while a worker reads; they are bounded and expire, so a dead worker cannot pin the
store forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import torch

from alora_serve.engine.kv_owner import KVOwner
from alora_serve.errors import NotFoundError
from alora_serve.kv.store.prefix_store import PrefixLease
from alora_serve.prefill.leases import (
    DEFAULT_LEASE_LIMITS,
    LeaseLimits,
    LeaseTable,
    TooManyLeasesError,
)
from alora_serve.transfer.grants import LeaseGrant

logger = logging.getLogger(__name__)


class UnknownLeaseError(NotFoundError):
    """The lease was released or expired (or granted by another replica)."""

    reason = "UNKNOWN_LEASE"


class PrefillService:
    def __init__(self, kv: KVOwner, host: str, limits: LeaseLimits = DEFAULT_LEASE_LIMITS) -> None:
        self.kv = kv  # the base-model engine's store
        self.host = host
        self.limits = limits
        self._leases: LeaseTable[PrefixLease] = LeaseTable(limits.max_leases, limits.ttl_s)

    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        """Pin the base KV of ``tokens`` (computing what is missing) for a reader."""
        self.expire_leases()
        self._leases.check_room()
        lease = await self.kv.acquire(list(tokens), tenant)
        try:  # concurrent leases may have taken the last room while this one computed
            lease_id = self._leases.add(lease)
        except TooManyLeasesError:
            self.kv.release(lease)
            raise
        order = dataclasses.replace(lease.load_order(), arena=self.kv.arena_path)
        return LeaseGrant(
            lease_id,
            order,
            self.host,
            self.kv.fingerprint(),
            lease.computed_tokens,
            self.limits.ttl_s,
        )

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        """Unpin; ``unusable``: a reader found the bytes bad, so they are dropped."""
        lease = self._leases.pop(lease_id)
        if lease is not None:
            self.kv.release(lease, unusable)

    async def renew(self, lease_ids: Sequence[int]) -> list[int]:
        """Extend leases a reader still holds; returns those no longer held."""
        return [lease_id for lease_id in lease_ids if not self._leases.renew(lease_id)]

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> torch.Tensor:
        """The bytes of blocks ``blocks`` of a leased prefix, for a reader on another host."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise UnknownLeaseError(
                f"lease {lease_id} was released or has expired", ("lease", str(lease_id))
            )
        return self.kv.read_blocks(lease, blocks)

    async def store(self, tokens: Sequence[int], tenant: str) -> None:
        """Compute and keep the base KV of ``tokens`` (a conversation's latest turn)."""
        async with self.kv.leased(list(tokens), tenant):
            pass

    def expire_leases(self) -> int:
        expired = self._leases.pop_expired()
        for lease in expired:
            self.kv.release(lease)
        if expired:
            logger.warning("%d prefix leases expired unreleased (reader gone?)", len(expired))
        return len(expired)

    async def expire_leases_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.expire_leases()

    @property
    def active_leases(self) -> int:
        return len(self._leases)

    @property
    def expired_leases(self) -> int:
        return self._leases.expired
