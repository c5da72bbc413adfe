from __future__ import annotations

from alora_serve.kv.orders import LoadOrder
from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.hashing import key_tag
from alora_serve.kv.store.prefix_store import PrefixStore

BLOCK = 4


def make_store(slots: int = 8) -> PrefixStore:
    return PrefixStore(BlockPool(slots), BLOCK, "model|float32|4")


def test_keys_are_chained_and_namespaced() -> None:
    store = make_store()
    tokens = list(range(10))
    keys = store.keys_for(tokens, "t1")
    assert len(keys) == 3  # 4 + 4 + partial 2
    assert store.keys_for(tokens[:8], "t1") == keys[:2]
    assert store.keys_for(tokens[:9], "t1")[2] != keys[2]  # partial block differs
    assert store.keys_for([99, *tokens[1:]], "t1")[1] != keys[1]  # chain: earlier change
    assert set(store.keys_for(tokens, "t2")).isdisjoint(keys)  # tenants never share


def test_lease_is_all_or_nothing() -> None:
    store = make_store()
    keys = store.keys_for(list(range(12)), "t")
    plan = store.plan_fill(keys[:2], 8)
    store.release(store.commit(plan))
    assert store.lease(keys, 12) is None
    assert store.pool.stats().pinned_blocks == 0  # a miss pins nothing


def test_fill_plan_saves_only_missing_blocks() -> None:
    store = make_store()
    keys = store.keys_for(list(range(12)), "t")
    store.release(store.commit(store.plan_fill(keys[:1], 4)))
    plan = store.plan_fill(keys, 12)
    order = plan.save_order()
    assert order.blocks == (1, 2)
    assert order.tags == (key_tag(keys[1]), key_tag(keys[2]))
    # The stored first block is loaded, not computed again (the next turn's fill).
    assert order.preload == LoadOrder(BLOCK, plan.slots[:1], (key_tag(keys[0]),))
    lease = store.commit(plan)
    load = lease.load_order()
    assert (load.num_tokens, load.slots) == (12, plan.slots)
    store.release(lease)
    assert store.pool.stats().pinned_blocks == 0


def test_fill_of_a_new_prefix_preloads_nothing() -> None:
    store = make_store()
    keys = store.keys_for(list(range(12)), "t")
    assert store.plan_fill(keys, 12).save_order().preload is None


def test_abort_restores_the_pool_exactly() -> None:
    store = make_store()
    keys = store.keys_for(list(range(12)), "t")
    store.release(store.commit(store.plan_fill(keys[:1], 4)))
    before = store.pool.stats()
    store.abort(store.plan_fill(keys, 12))
    after = store.pool.stats()
    assert (after.used_blocks, after.pinned_blocks) == (before.used_blocks, 0)
