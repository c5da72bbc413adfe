"""Prometheus views of the prefill service's leases and a decode worker's transfers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alora_serve.disagg.prefill_service import PrefillService
from alora_serve.disagg.remote_prefixes import TransferCounts


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


class TransferCollector(Collector):
    def __init__(self, counts: Callable[[], TransferCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        figures = {
            "alora_transfer_in_place": (
                "Prefixes read in place from the prefill arena",
                counts.in_place,
            ),
            "alora_transfer_pulled_bytes": (
                "KV bytes pulled from another host",
                counts.pulled_bytes,
            ),
            "alora_transfer_local_hits": ("Prefixes served from earlier pulls", counts.local_hits),
            "alora_transfer_recomputed": (
                "Prefixes computed here because the prefill service failed",
                counts.recomputed,
            ),
        }
        for name, (doc, value) in figures.items():
            yield CounterMetricFamily(name, doc, value)
