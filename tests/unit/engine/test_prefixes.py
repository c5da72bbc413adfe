from __future__ import annotations

import asyncio

import pytest

from alora_serve.engine.prefixes import PrefixManager
from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.prefix_store import PrefixStore


class FakePrefill:
    """Records the save orders a real engine would execute."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, tuple[int, ...]]] = []
        self.tenants: list[str] = []
        self.fail = fail
        self.running = self.most_running = 0

    async def __call__(self, tokens, order, tenant) -> int:
        self.calls.append((len(tokens), order.blocks))
        self.tenants.append(tenant)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        if self.fail:
            raise RuntimeError("engine died")
        return len(tokens)


def manager(prefill, slots: int = 16) -> PrefixManager:
    return PrefixManager(PrefixStore(BlockPool(slots), 4, "m"), prefill)


async def test_missing_prefix_is_prefilled_once_then_reused() -> None:
    prefill = FakePrefill()
    prefixes = manager(prefill)
    tokens = list(range(10))
    async with prefixes.leased(tokens, "t") as lease:
        assert lease.num_tokens == 10 and len(lease.slots) == 3
        assert lease.computed_tokens == 10  # computed to grant it
        assert prefixes.store.pool.stats().pinned_blocks == 3
    async with prefixes.leased(tokens, "t") as again:
        assert again.computed_tokens == 0  # found stored
    assert prefill.calls == [(10, (0, 1, 2))]
    assert prefill.tenants == ["t"]
    assert (prefixes.fills, prefixes.filled_tokens) == (1, 10)
    assert prefixes.store.pool.stats().pinned_blocks == 0


async def test_concurrent_callers_share_one_prefill() -> None:
    prefill = FakePrefill()
    prefixes = manager(prefill)

    async def use() -> None:
        async with prefixes.leased(list(range(10)), "t"):
            await asyncio.sleep(0.01)

    await asyncio.gather(*(use() for _ in range(5)))
    assert len(prefill.calls) == 1
    assert prefixes._pending == {}  # nothing left marked as being computed


async def test_different_tails_after_a_stored_prefix_fill_concurrently() -> None:
    prefill = FakePrefill()
    prefixes = manager(prefill)
    async with prefixes.leased(list(range(8)), "t"):
        pass

    async def tail(first: int) -> None:
        async with prefixes.leased([*range(8), first, first + 1], "t"):
            pass

    await asyncio.gather(tail(100), tail(200), tail(100))
    assert prefill.most_running == 2  # the two different tails at once, not in turn
    assert len(prefill.calls) == 3  # the stored prefix, then each tail once


async def test_longer_prefix_prefills_only_new_blocks() -> None:
    prefill = FakePrefill()
    prefixes = manager(prefill)
    async with prefixes.leased(list(range(8)), "t"):
        pass
    async with prefixes.leased(list(range(14)), "t"):
        pass
    assert prefill.calls == [(8, (0, 1)), (14, (2, 3))]


async def test_failed_prefill_leaves_nothing_behind() -> None:
    prefixes = manager(FakePrefill(fail=True))
    with pytest.raises(RuntimeError, match="engine died"):
        async with prefixes.leased(list(range(10)), "t"):
            pass
    stats = prefixes.store.pool.stats()
    assert (stats.used_blocks, stats.pinned_blocks) == (0, 0)


async def test_empty_prefix_needs_no_prefill() -> None:
    prefill = FakePrefill()
    async with manager(prefill).leased([], "t") as lease:
        assert lease.num_tokens == 0 and lease.slots == ()
    assert prefill.calls == []


async def test_a_lease_that_waited_for_a_concurrent_fill_counts_it_computed() -> None:
    prefill = FakePrefill()
    prefixes = manager(prefill)
    tokens = list(range(10))
    first, second = await asyncio.gather(*(prefixes.acquire(tokens, "t") for _ in range(2)))
    assert len(prefill.calls) == 1  # computed once
    # Neither found it stored when it asked: both count it computed for their call.
    assert first.computed_tokens == second.computed_tokens == 10
    longer = await prefixes.acquire([*tokens, 10, 11, 12], "t")
    assert longer.computed_tokens == 13  # the fill's own count (the fake computes all)
