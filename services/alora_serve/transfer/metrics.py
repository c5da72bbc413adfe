"""Prometheus view of a decode worker's transfers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class TransferCounts:
    in_place: int = 0  # calls that read the prefill service's arena on this host
    pulled_blocks: int = 0  # blocks copied here from another host
    pulled_bytes: int = 0
    local_hits: int = 0  # calls served from blocks pulled earlier
    recomputed: int = 0  # fills computed here because the prefill service failed
    recomputed_tokens: int = 0  # base-model prompt tokens those fills computed here


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
