from __future__ import annotations

from prometheus_client import CollectorRegistry

from alora_serve.transfer.metrics import TransferCollector, TransferCounts


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_transfer_counts_are_counters() -> None:
    counts = TransferCounts(in_place=4, pulled_bytes=1024, recomputed=1)
    registry = registry_of(TransferCollector(lambda: counts))
    assert registry.get_sample_value("alora_transfer_in_place_total") == 4
    assert registry.get_sample_value("alora_transfer_pulled_bytes_total") == 1024
    assert registry.get_sample_value("alora_transfer_recomputed_total") == 1
    assert registry.get_sample_value("alora_transfer_local_hits_total") == 0
