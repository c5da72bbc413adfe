"""The engine's KV store as the rest of the service sees it: one narrow interface over the
shared-memory arena (bytes), the block bookkeeping and the leasing of prefixes. The
prefill service lends from it; the transfer layer reads and writes through it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from alora_serve.engine.config import EngineConfig
from alora_serve.engine.prefixes import Fill, PrefixManager
from alora_serve.kv.fingerprint import KVFingerprint
from alora_serve.kv.store.arena import SlotArena
from alora_serve.kv.store.block_pool import BlockPool, PoolStats
from alora_serve.kv.store.metrics import KVStoreCollector
from alora_serve.kv.store.prefix_store import PrefixLease, PrefixStore


class KVOwner:
    """Owns an engine's stored KV; also the engine's own source of prefixes (a
    ``PrefixSource``: it computes what is missing with ``fill``)."""

    def __init__(
        self, arena: SlotArena, prefixes: PrefixManager, fingerprint: KVFingerprint | None = None
    ) -> None:
        self.arena = arena
        self.prefixes = prefixes
        self._fingerprint = fingerprint  # None: read once the vLLM worker published it

    @classmethod
    def for_engine(
        cls, config: EngineConfig, arena: SlotArena, kv_model: str, fill: Fill
    ) -> KVOwner:
        """The store of an engine running ``kv_model``'s base weights."""
        namespace = f"{kv_model}|{config.dtype}|{config.block_size}"
        pool = BlockPool(arena.spec.num_slots, ttl_s=config.kv_store_ttl_s)
        return cls(arena, PrefixManager(PrefixStore(pool, config.block_size, namespace), fill))

    # -- prefixes --------------------------------------------------------------------

    def leased(
        self, tokens: Sequence[int], tenant: str
    ) -> contextlib.AbstractAsyncContextManager[PrefixLease]:
        """Pinned base KV of ``tokens`` for the block, computed where missing."""
        return self.prefixes.leased(tokens, tenant)

    async def acquire(
        self, tokens: Sequence[int], tenant: str, fill: Fill | None = None
    ) -> PrefixLease:
        return await self.prefixes.acquire(tokens, tenant, fill)

    def release(self, lease: PrefixLease, unusable: bool = False) -> None:
        self.prefixes.release(lease, unusable)

    def has(self, tokens: Sequence[int], tenant: str) -> bool:
        return self.prefixes.has(tokens, tenant)

    @property
    def fills(self) -> int:
        return self.prefixes.fills

    @property
    def filled_tokens(self) -> int:
        """Prompt tokens computed for fills (here, or where pulled from)."""
        return self.prefixes.filled_tokens

    # -- bytes -----------------------------------------------------------------------

    @property
    def arena_path(self) -> str:
        """Where readers on this host open the arena."""
        return self.arena.spec.path

    @property
    def block_bytes(self) -> int:
        return self.arena.spec.slot_bytes

    def read_blocks(self, lease: PrefixLease, blocks: Sequence[int]) -> torch.Tensor:
        """The bytes of blocks ``blocks`` (indices into the prefix) of a held lease."""
        return self.arena.read_slots([lease.slots[b] for b in blocks])

    def write_blocks(self, slots: Sequence[int], tags: Sequence[int], data: torch.Tensor) -> None:
        """Bytes from another engine into slots a fill reserved."""
        self.arena.write_slots(slots, tags, data)

    def fingerprint(self) -> KVFingerprint:
        """What this store's blocks are compatible with (published by vLLM's worker)."""
        if self._fingerprint is None:
            self._fingerprint = self.arena.fingerprint()
            if self._fingerprint is None:
                raise RuntimeError("the engine's worker has not registered its KV cache")
        return self._fingerprint

    # -- bounds and metrics ----------------------------------------------------------

    def stats(self) -> PoolStats:
        return self.prefixes.store.pool.stats()

    def collector(self, store_name: str = "prefix") -> KVStoreCollector:
        """A Prometheus collector of the store's size, hits, misses and evictions."""
        return KVStoreCollector(self.stats, self.block_bytes, store_name)

    def close(self) -> None:
        self.arena.unlink()
