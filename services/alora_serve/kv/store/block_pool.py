"""Bookkeeping of a bounded store of KV blocks: slots, content keys, pins, LRU eviction.

Pure Python and single-owner (no locks, no tensors): the process that owns the store
decides everything, the processes that move bytes only execute its orders. Like vLLM's
block pool, a block is in one of three states:

- reserved: allocated for a save that has not completed; pinned by the saver;
- ready and pinned: readable, cannot be evicted while any reader holds it;
- ready and unpinned: readable, in the LRU queue, evicted when space is needed (or,
  with a TTL, once unused for that long).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alora_serve.errors import OverloadedError
from alora_serve.kv.store.hashing import BlockKey


class StoreFullError(OverloadedError):
    """Every slot is pinned by in-flight work: back-pressure, retry later."""


@dataclass
class PoolStats:
    capacity_blocks: int
    used_blocks: int = 0
    pinned_blocks: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0


class BlockPool:
    def __init__(
        self,
        num_slots: int,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if num_slots <= 0:
            raise ValueError(f"a block pool needs at least one slot, got {num_slots}")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"a block TTL must be positive, got {ttl_s}")
        self._ttl_s = ttl_s
        self._clock = clock
        self._free = list(range(num_slots - 1, -1, -1))
        self._slot_of: dict[BlockKey, int] = {}
        self._key_of: dict[int, BlockKey] = {}
        self._refs: dict[int, int] = {}
        self._ready: set[int] = set()
        # ready, unpinned: slot -> when it was last released; oldest first
        self._lru: OrderedDict[int, float] = OrderedDict()
        self._stats = PoolStats(capacity_blocks=num_slots)

    # -- queries ---------------------------------------------------------------------

    def num_ready_prefix(self, keys: Sequence[BlockKey]) -> int:
        """How many leading ``keys`` are readable right now (no side effects)."""
        for i, key in enumerate(keys):
            slot = self._slot_of.get(key)
            if slot is None or slot not in self._ready:
                return i
        return len(keys)

    def stats(self) -> PoolStats:
        used = len(self._key_of)
        return PoolStats(
            capacity_blocks=self._stats.capacity_blocks,
            used_blocks=used,
            pinned_blocks=used - len(self._lru),
            hits=self._stats.hits,
            misses=self._stats.misses,
            evictions=self._stats.evictions,
            expirations=self._stats.expirations,
        )

    # -- readers ---------------------------------------------------------------------

    def pin(self, keys: Sequence[BlockKey]) -> list[int]:
        """Pin ready blocks for reading; every key must be ready."""
        slots = [self._slot_of[key] for key in keys]
        if any(slot not in self._ready for slot in slots):
            raise KeyError("pin() needs ready blocks; check num_ready_prefix() first")
        for slot in slots:
            self._add_ref(slot)
        self._stats.hits += len(slots)
        return slots

    def unpin(self, keys: Sequence[BlockKey]) -> None:
        # Reversed so a prefix's tail becomes older in the LRU than its head: eviction
        # then shortens prefixes from the end instead of breaking them in the middle.
        for key in reversed(keys):
            slot = self._slot_of[key]
            self._refs[slot] -= 1
            if self._refs[slot] == 0 and slot in self._ready:
                self._lru[slot] = self._clock()

    # -- writers ---------------------------------------------------------------------

    def reserve(self, keys: Sequence[BlockKey]) -> list[int]:
        """Allocate pinned, not-yet-ready slots for absent keys, evicting LRU blocks."""
        if any(key in self._slot_of for key in keys):
            raise KeyError("reserve() takes only keys absent from the pool")
        if len(keys) > len(self._free) + len(self._lru):
            raise StoreFullError(
                f"KV store full: {len(keys)} blocks needed, "
                f"{len(self._free) + len(self._lru)} free or evictable"
            )
        slots = []
        for key in keys:
            if not self._free:
                self._free.append(self._evict_oldest())
                self._stats.evictions += 1
            slot = self._free.pop()
            self._slot_of[key] = slot
            self._key_of[slot] = key
            self._refs[slot] = 1
            slots.append(slot)
        self._stats.misses += len(keys)
        return slots

    def commit(self, keys: Sequence[BlockKey]) -> None:
        """The bytes of reserved blocks are written: make them readable (still pinned)."""
        for key in keys:
            self._ready.add(self._slot_of[key])

    def abort(self, keys: Sequence[BlockKey]) -> None:
        """A save failed: forget its reserved blocks."""
        for key in keys:
            slot = self._slot_of.pop(key)
            if slot in self._ready:
                raise KeyError("abort() is for reserved blocks, not committed ones")
            del self._key_of[slot], self._refs[slot]
            self._free.append(slot)

    def drop(self, keys: Sequence[BlockKey]) -> None:
        """Forget ready, unpinned blocks (their bytes proved bad); pinned ones stay."""
        for key in keys:
            slot = self._slot_of.get(key)
            if slot is not None and slot in self._lru:
                del self._lru[slot], self._slot_of[key], self._key_of[slot], self._refs[slot]
                self._ready.discard(slot)
                self._free.append(slot)

    def expire(self) -> int:
        """Free unpinned blocks unused for longer than the TTL (if any); how many."""
        if self._ttl_s is None:
            return 0
        deadline = self._clock() - self._ttl_s
        expired = 0
        while self._lru and next(iter(self._lru.values())) <= deadline:
            self._free.append(self._evict_oldest())
            expired += 1
        self._stats.expirations += expired
        return expired

    # -- internals -------------------------------------------------------------------

    def _add_ref(self, slot: int) -> None:
        self._refs[slot] += 1
        self._lru.pop(slot, None)

    def _evict_oldest(self) -> int:
        slot, _ = self._lru.popitem(last=False)
        key = self._key_of.pop(slot)
        del self._slot_of[key], self._refs[slot]
        self._ready.discard(slot)
        return slot
