from __future__ import annotations

from prometheus_client import CollectorRegistry

from alora_serve.transfer.metrics import TransferCollector, TransferCounts, transfer_latency


def registry_of(*collectors) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def test_transfer_counts_are_counters_per_transport() -> None:
    counts = TransferCounts(
        in_place=4, in_place_blocks=8, in_place_bytes=4096, pulled_blocks=2, pulled_bytes=1024
    )
    counts.recomputed, counts.recomputed_tokens = 1, 300
    registry = registry_of(TransferCollector(lambda: counts))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("alora_transfer_blocks_total", transport="in_place") == 8
    assert value("alora_transfer_blocks_total", transport="pulled") == 2
    assert value("alora_transfer_bytes_total", transport="in_place") == 4096
    assert value("alora_transfer_bytes_total", transport="pulled") == 1024
    assert value("alora_transfer_recomputed_total") == 1
    assert value("alora_transfer_recomputed_tokens_total") == 300
    assert value("alora_transfer_local_hits_total") == 0


def test_transfer_latency_is_a_histogram_per_transport() -> None:
    latency = transfer_latency()
    latency.labels("in_place").observe(0.004)
    latency.labels("pulled").observe(0.3)
    latency.labels("pulled").observe(0.7)
    registry = registry_of(latency)
    count = registry.get_sample_value
    assert count("alora_transfer_seconds_count", {"transport": "in_place"}) == 1
    assert count("alora_transfer_seconds_count", {"transport": "pulled"}) == 2
    assert count("alora_transfer_seconds_bucket", {"transport": "pulled", "le": "0.5"}) == 1
    assert abs(count("alora_transfer_seconds_sum", {"transport": "pulled"}) - 1.0) < 1e-9
