"""Leasing the base KV of prompt prefixes, computing it first when the store lacks it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from alora_serve.engine.errors import KVLoadError
from alora_serve.kv.orders import LoadOrder, SaveOrder
from alora_serve.kv.store.hashing import BlockKey
from alora_serve.kv.store.prefix_store import FillPlan, PrefixLease, PrefixStore

# Writes the base KV of a tenant's prefix into the slots of a save order (by computing it,
# or by pulling it from another engine); returns the prompt tokens computed for it (here or,
# for a pull, by the engine it came from).
Fill = Callable[[Sequence[int], SaveOrder, str], Awaitable[int]]


class HoldsPrefix(Protocol):
    """Base KV of a prefix, pinned while held."""

    @property
    def computed_tokens(self) -> int:
        """Tokens of the prefix computed to grant this lease (0: all were found stored)."""
        ...

    def load_order(self) -> LoadOrder: ...


class PrefixSource(Protocol):
    """Where an engine gets the base KV of [0, s) for an adapter call."""

    def leased(
        self, tokens: Sequence[int], tenant: str
    ) -> contextlib.AbstractAsyncContextManager[HoldsPrefix]: ...


@contextlib.asynccontextmanager
async def hold_all(
    source: PrefixSource, prefixes: Sequence[Sequence[int]], tenant: str
) -> AsyncIterator[dict[tuple[int, ...], HoldsPrefix]]:
    """Hold the base KV of several prefixes (computing what is missing, each block once,
    fills of different blocks together) while calls that start with them run; yields each
    prefix's lease (which says how many of its tokens it computed). Computing them all
    before any of those calls starts keeps the base model's prefill steps from slowing
    down the calls' short decode steps."""
    held: dict[tuple[int, ...], HoldsPrefix] = {}
    entered: list[contextlib.AbstractAsyncContextManager] = []

    async def take(tokens: Sequence[int]) -> None:
        lease = source.leased(tokens, tenant)
        held[tuple(tokens)] = await lease.__aenter__()
        entered.append(lease)

    try:
        outcomes = await asyncio.gather(*map(take, prefixes), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        yield held
    finally:
        for lease in reversed(entered):
            await lease.__aexit__(None, None, None)


class PrefixManager:
    """A PrefixSource over this engine's own store, filled by ``fill`` when blocks miss."""

    def __init__(self, store: PrefixStore, fill: Fill) -> None:
        self.store = store
        self._fill = fill
        self._pending: dict[BlockKey, asyncio.Event] = {}  # keys a fill is computing now
        self.fills = 0
        self.filled_tokens = 0  # prompt tokens computed for fills (here, or where pulled from)

    @contextlib.asynccontextmanager
    async def leased(
        self, tokens: Sequence[int], tenant: str, fill: Fill | None = None
    ) -> AsyncIterator[PrefixLease]:
        """Pinned base KV of ``tokens``, filled (by ``fill`` if given) if missing."""
        lease = await self.acquire(tokens, tenant, fill)
        unusable = False
        try:
            yield lease
        except KVLoadError:
            unusable = True
            raise
        finally:
            self.release(lease, unusable)

    async def acquire(
        self, tokens: Sequence[int], tenant: str, fill: Fill | None = None
    ) -> PrefixLease:
        keys = self.store.keys_for(tokens, tenant)
        # Fills of prefixes that share only ready blocks run concurrently (e.g. several
        # instructions after one conversation); one that needs a block another fill is
        # computing waits for it and looks again, so no key is ever computed twice.
        # Blocks waited for were not stored when asked: the lease counts them computed.
        waited: set[int] = set()
        computed = 0
        while not (lease := self.store.lease(keys, len(tokens))):
            busy = [i for i, key in enumerate(keys) if key in self._pending]
            if busy:
                waited.update(busy)
                await self._pending[keys[busy[0]]].wait()
                continue
            # No await between the check above and the reservation: atomic for asyncio.
            plan = self.store.plan_fill(keys, len(tokens))
            lease = await self._compute(tokens, plan, tenant, fill or self._fill)
            computed = lease.computed_tokens
            # The fill computed every block from its first missing one on.
            head = plan.missing[0] if plan.missing else len(keys)
            waited = {block for block in waited if block < head}
            break
        computed += sum(self._block_tokens(i, len(tokens)) for i in waited)
        return dataclasses.replace(lease, computed_tokens=min(computed, len(tokens)))

    def release(self, lease: PrefixLease, unusable: bool = False) -> None:
        """Unpin; ``unusable``: its bytes failed verification, the next lease recomputes."""
        self.store.release(lease)
        if unusable:
            self.store.pool.drop(lease.keys)

    def _block_tokens(self, block: int, num_tokens: int) -> int:
        size = self.store.block_size
        return min(size, num_tokens - block * size)

    def has(self, tokens: Sequence[int], tenant: str) -> bool:
        keys = self.store.keys_for(tokens, tenant)
        return self.store.pool.num_ready_prefix(keys) == len(keys)

    async def _compute(
        self, tokens: Sequence[int], plan: FillPlan, tenant: str, fill: Fill
    ) -> PrefixLease:
        computing = {plan.keys[i]: asyncio.Event() for i in plan.missing}
        self._pending.update(computing)
        try:
            computed = await fill(tokens, plan.save_order(), tenant)
        except BaseException:
            self.store.abort(plan)
            raise
        finally:
            for key, done in computing.items():
                del self._pending[key]
                done.set()
        self.fills += 1
        self.filled_tokens += computed
        return dataclasses.replace(self.store.commit(plan), computed_tokens=computed)
