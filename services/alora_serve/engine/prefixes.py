"""Leasing the base KV of prompt prefixes, computing it first when the store lacks it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence

from alora_serve.engine.errors import KVLoadError
from alora_serve.kv.hashing import BlockKey
from alora_serve.kv.orders import SaveOrder
from alora_serve.kv.prefix_store import PrefixLease, PrefixStore

# Computes the base KV of a prefix and saves it as ordered; returns the tokens computed.
Prefill = Callable[[Sequence[int], SaveOrder], Awaitable[int]]


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class PrefixManager:
    def __init__(self, store: PrefixStore, prefill: Prefill) -> None:
        self.store = store
        self._prefill = prefill
        self._fills = KeyedLocks()
        self.fills = 0
        self.filled_tokens = 0  # prompt tokens the base model computed for fills

    @contextlib.asynccontextmanager
    async def leased(self, tokens: Sequence[int], tenant: str) -> AsyncIterator[PrefixLease]:
        """Pinned base KV of ``tokens``, prefilled with the base model if missing."""
        keys = self.store.keys_for(tokens, tenant)
        lease = self.store.lease(keys, len(tokens)) or await self._fill(tokens, keys)
        unusable = False
        try:
            yield lease
        except KVLoadError:
            unusable = True
            raise
        finally:
            self.store.release(lease)
            if unusable:  # its bytes failed verification: the next lease recomputes it
                self.store.pool.drop(lease.keys)

    async def _fill(self, tokens: Sequence[int], keys: Sequence[BlockKey]) -> PrefixLease:
        # Chained keys: prefixes that differ in their first block share no block, so
        # serialising fills per first block is enough to never reserve a key twice.
        async with self._fills.hold(keys[0]):
            if lease := self.store.lease(keys, len(tokens)):
                return lease  # filled by whoever held the lock before us
            plan = self.store.plan_fill(keys, len(tokens))
            try:
                computed = await self._prefill(tokens, plan.save_order())
            except BaseException:
                self.store.abort(plan)
                raise
            self.fills += 1
            self.filled_tokens += computed
            return self.store.commit(plan)
