from __future__ import annotations

import pytest

from alora_serve.kv.store.block_pool import BlockPool, StoreFullError

A, B, C, D = b"a", b"b", b"c", b"d"


def fill(pool: BlockPool, keys: list[bytes]) -> list[int]:
    slots = pool.reserve(keys)
    pool.commit(keys)
    pool.unpin(keys)
    return slots


def test_reserved_blocks_are_not_readable_until_committed() -> None:
    pool = BlockPool(4)
    pool.reserve([A, B])
    assert pool.num_ready_prefix([A, B]) == 0
    pool.commit([A, B])
    assert pool.num_ready_prefix([A, B, C]) == 2


def test_lru_evicts_unpinned_tail_first() -> None:
    pool = BlockPool(3)
    fill(pool, [A, B, C])  # unpinned in reverse: C oldest, then B, then A
    pool.reserve([D])
    assert pool.num_ready_prefix([A, B, C]) == 2  # C went first
    assert pool.stats().evictions == 1


def test_pinned_blocks_are_never_evicted() -> None:
    pool = BlockPool(2)
    fill(pool, [A, B])
    pool.pin([A, B])
    with pytest.raises(StoreFullError, match="1 blocks needed, 0 free"):
        pool.reserve([C])
    pool.unpin([A, B])
    pool.reserve([C])
    assert pool.stats().evictions == 1


def test_recently_used_block_survives() -> None:
    pool = BlockPool(2)
    fill(pool, [A])
    fill(pool, [B])
    pool.pin([A])  # a reader touches A: B is now the least recently used
    pool.unpin([A])
    pool.reserve([C])
    assert pool.num_ready_prefix([A]) == 1
    assert pool.num_ready_prefix([B]) == 0


def test_abort_returns_slots_exactly() -> None:
    pool = BlockPool(3)
    pool.reserve([A, B])
    pool.abort([A, B])
    stats = pool.stats()
    assert (stats.used_blocks, stats.pinned_blocks) == (0, 0)
    assert len(pool.reserve([A, B, C])) == 3  # nothing leaked


def test_stats_count_hits_misses_and_pins() -> None:
    pool = BlockPool(4)
    fill(pool, [A, B])
    pool.pin([A, B])
    stats = pool.stats()
    assert (stats.hits, stats.misses, stats.used_blocks, stats.pinned_blocks) == (2, 2, 2, 2)
    pool.unpin([A, B])
    assert pool.stats().pinned_blocks == 0


def test_drop_forgets_only_unpinned_blocks() -> None:
    pool = BlockPool(2)
    fill(pool, [A, B])
    pool.pin([B])
    pool.drop([A, B])
    assert pool.num_ready_prefix([A]) == 0
    assert pool.num_ready_prefix([B]) == 1
    assert pool.stats().used_blocks == 1


def test_misuse_is_refused() -> None:
    pool = BlockPool(2)
    pool.reserve([A])
    with pytest.raises(KeyError):
        pool.reserve([A])  # already present
    with pytest.raises(KeyError):
        pool.pin([A])  # not ready yet
    with pytest.raises(ValueError):
        BlockPool(0)


def test_unused_blocks_expire_after_the_ttl_pinned_ones_never() -> None:
    now = [0.0]
    pool = BlockPool(4, ttl_s=10, clock=lambda: now[0])
    old, kept, busy = [b"o"], [b"k"], [b"b"]
    for keys in (old, kept, busy):
        pool.reserve(keys)
        pool.commit(keys)
    pool.unpin(old)
    now[0] = 5
    pool.unpin(kept)
    now[0] = 12
    assert pool.expire() == 1
    assert pool.num_ready_prefix(old) == 0 and pool.num_ready_prefix(kept) == 1
    now[0] = 100
    assert pool.expire() == 1  # kept; busy is still pinned
    assert pool.num_ready_prefix(busy) == 1
    stats = pool.stats()
    assert (stats.expirations, stats.evictions, stats.used_blocks) == (2, 0, 1)


def test_without_a_ttl_nothing_expires() -> None:
    pool = BlockPool(1)
    pool.reserve([b"a"])
    pool.commit([b"a"])
    pool.unpin([b"a"])
    assert pool.expire() == 0 and pool.num_ready_prefix([b"a"]) == 1
