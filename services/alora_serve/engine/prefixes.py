"""Leasing the base KV of prompt prefixes, computing it first when the store lacks it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from alora_serve.engine.errors import KVLoadError
from alora_serve.kv.hashing import BlockKey
from alora_serve.kv.orders import SaveOrder
from alora_serve.kv.prefix_store import FillPlan, PrefixLease, PrefixStore

# Computes the base KV of a tenant's prefix and saves it as ordered; returns the tokens
# computed.
Prefill = Callable[[Sequence[int], SaveOrder, str], Awaitable[int]]


class PrefixManager:
    def __init__(self, store: PrefixStore, prefill: Prefill) -> None:
        self.store = store
        self._prefill = prefill
        self._pending: dict[BlockKey, asyncio.Event] = {}  # keys a fill is computing now
        self.fills = 0
        self.filled_tokens = 0  # prompt tokens the base model computed for fills

    @contextlib.asynccontextmanager
    async def leased(self, tokens: Sequence[int], tenant: str) -> AsyncIterator[PrefixLease]:
        """Pinned base KV of ``tokens``, prefilled with the base model if missing."""
        keys = self.store.keys_for(tokens, tenant)
        lease = await self._lease_or_fill(tokens, keys, tenant)
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

    async def _lease_or_fill(
        self, tokens: Sequence[int], keys: Sequence[BlockKey], tenant: str
    ) -> PrefixLease:
        # Fills of prefixes that share only ready blocks run concurrently (e.g. several
        # instructions after one conversation); one that needs a block another fill is
        # computing waits for it and looks again, so no key is ever computed twice.
        while not (lease := self.store.lease(keys, len(tokens))):
            busy = next((self._pending[k] for k in keys if k in self._pending), None)
            if busy is not None:
                await busy.wait()
                continue
            # No await between the check above and the reservation: atomic for asyncio.
            return await self._compute(tokens, self.store.plan_fill(keys, len(tokens)), tenant)
        return lease

    async def _compute(self, tokens: Sequence[int], plan: FillPlan, tenant: str) -> PrefixLease:
        computing = {plan.keys[i]: asyncio.Event() for i in plan.missing}
        self._pending.update(computing)
        try:
            computed = await self._prefill(tokens, plan.save_order(), tenant)
        except BaseException:
            self.store.abort(plan)
            raise
        finally:
            for key, done in computing.items():
                del self._pending[key]
                done.set()
        self.fills += 1
        self.filled_tokens += computed
        return self.store.commit(plan)
