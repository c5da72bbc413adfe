"""Prometheus view of the prefill service's leases."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alora_serve.prefill.service import PrefillService


class LeaseCollector(Collector):
    def __init__(self, service: PrefillService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        yield GaugeMetricFamily(
            "alora_prefill_leases", "Prefix leases held by readers", service.active_leases
        )
        yield GaugeMetricFamily(
            "alora_prefill_leases_limit",
            "Bound of prefix leases (beyond it, callers are refused: back-pressure)",
            service.limits.max_leases,
        )
        yield CounterMetricFamily(
            "alora_prefill_leases_expired",
            "Leases that expired unreleased (a reader died or stalled)",
            service.expired_leases,
        )
