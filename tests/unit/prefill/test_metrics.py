from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from alora_serve.prefill.leases import LeaseLimits
from alora_serve.prefill.metrics import LeaseCollector


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
