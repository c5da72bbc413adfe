"""Prometheus view of a KV store, read at scrape time (no counters to keep in sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alora_serve.kv.store.block_pool import PoolStats


class KVStoreCollector(Collector):
    def __init__(self, stats: Callable[[], PoolStats], block_bytes: int, store: str) -> None:
        self._stats = stats
        self._block_bytes = block_bytes
        self._labels = {"store": store}

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        gauges = {
            "alora_kv_store_bytes": ("Bytes of KV blocks held", stats.used_blocks),
            "alora_kv_store_capacity_bytes": ("Bound of the store", stats.capacity_blocks),
            "alora_kv_store_pinned_bytes": ("Bytes pinned by readers", stats.pinned_blocks),
        }
        for name, (doc, blocks) in gauges.items():
            yield self._metric(GaugeMetricFamily, name, doc, blocks * self._block_bytes)
        yield self._metric(
            GaugeMetricFamily, "alora_kv_store_blocks", "KV blocks held", stats.used_blocks
        )
        counters = {
            "alora_kv_store_hits": ("Blocks served from the store", stats.hits),
            "alora_kv_store_misses": ("Blocks computed because absent", stats.misses),
            "alora_kv_store_evictions": ("Blocks evicted (LRU)", stats.evictions),
            "alora_kv_store_expirations": ("Blocks freed unused past the TTL", stats.expirations),
        }
        for name, (doc, value) in counters.items():
            yield self._metric(CounterMetricFamily, name, doc, value)

    def _metric(self, kind, name: str, doc: str, value: float) -> Metric:
        metric = kind(name, doc, labels=list(self._labels))
        metric.add_metric(list(self._labels.values()), value)
        return metric
