from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from alora_serve.disagg.metrics import LeaseCollector, TransferCollector
from alora_serve.disagg.prefill_service import LeaseLimits
from alora_serve.disagg.remote_prefixes import TransferCounts


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_lease_figures_are_read_live() -> None:
    service = SimpleNamespace(active_leases=3, expired_leases=1, limits=LeaseLimits(max_leases=8))
    registry = registry_of(LeaseCollector(service))
    assert registry.get_sample_value("alora_prefill_leases") == 3
    assert registry.get_sample_value("alora_prefill_leases_limit") == 8
    service.expired_leases = 2
    assert registry.get_sample_value("alora_prefill_leases_expired_total") == 2


def test_transfer_counts_are_counters() -> None:
    counts = TransferCounts(in_place=4, pulled_bytes=1024, recomputed=1)
    registry = registry_of(TransferCollector(lambda: counts))
    assert registry.get_sample_value("alora_transfer_in_place_total") == 4
    assert registry.get_sample_value("alora_transfer_pulled_bytes_total") == 1024
    assert registry.get_sample_value("alora_transfer_recomputed_total") == 1
    assert registry.get_sample_value("alora_transfer_local_hits_total") == 0
