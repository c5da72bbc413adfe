from __future__ import annotations

from prometheus_client import CollectorRegistry

from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.metrics import KVStoreCollector


def test_collector_reports_live_store_numbers() -> None:
    pool = BlockPool(3)
    registry = CollectorRegistry()
    registry.register(KVStoreCollector(pool.stats, block_bytes=100, store="prefix"))

    def value(name: str) -> float:
        return registry.get_sample_value(name, {"store": "prefix"})

    assert value("alora_kv_store_capacity_bytes") == 300
    for keys in ([b"a", b"b"], [b"c", b"d"]):
        pool.reserve(keys)
        pool.commit(keys)
        pool.unpin(keys)
    pool.pin([b"c"])
    assert value("alora_kv_store_bytes") == 300
    assert value("alora_kv_store_pinned_bytes") == 100
    assert value("alora_kv_store_misses_total") == 4
    assert value("alora_kv_store_hits_total") == 1
    assert value("alora_kv_store_evictions_total") == 1
