"""Prometheus view of a decode worker's transfers, per transport: ``in_place`` (the
prefill service's arena read where it lies, on this host) and ``pulled`` (blocks copied
here from another host)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

TRANSPORTS = ("in_place", "pulled")
# Seconds: a same-host lease is a round trip to the prefill service; a pull copies
# megabytes; either may wait for the base prefill of a conversation not yet stored.
TRANSFER_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class TransferCounts:
    in_place: int = 0  # calls that read the prefill service's arena on this host
    in_place_blocks: int = 0
    in_place_bytes: int = 0
    pulled_blocks: int = 0  # blocks copied here from another host
    pulled_bytes: int = 0
    local_hits: int = 0  # calls served from blocks pulled earlier
    recomputed: int = 0  # fills computed here because the prefill service failed
    recomputed_tokens: int = 0  # base-model prompt tokens those fills computed here


def transfer_latency() -> Histogram:
    """Seconds from asking the prefill service for a prefix until its KV is readable
    here, by transport (includes the service's prefill of blocks it did not have)."""
    return Histogram(
        "alora_transfer_seconds",
        "Seconds until a prefix's base KV was readable here, by transport",
        ["transport"],
        buckets=TRANSFER_BUCKETS_S,
        registry=None,
    )


class TransferCollector(Collector):
    def __init__(self, counts: Callable[[], TransferCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        per_transport = {
            "alora_transfer_blocks": (
                "KV blocks transferred",
                counts.in_place_blocks,
                counts.pulled_blocks,
            ),
            "alora_transfer_bytes": (
                "KV bytes transferred (in place: read where they lie, not copied)",
                counts.in_place_bytes,
                counts.pulled_bytes,
            ),
        }
        for name, (doc, in_place, pulled) in per_transport.items():
            family = CounterMetricFamily(name, doc, labels=["transport"])
            family.add_metric(["in_place"], in_place)
            family.add_metric(["pulled"], pulled)
            yield family
        figures = {
            "alora_transfer_local_hits": ("Prefixes served from earlier pulls", counts.local_hits),
            "alora_transfer_recomputed": (
                "Prefixes computed here because the prefill service failed (fallback)",
                counts.recomputed,
            ),
            "alora_transfer_recomputed_tokens": (
                "Base-model prompt tokens those fallbacks computed here",
                counts.recomputed_tokens,
            ),
        }
        for name, (doc, value) in figures.items():
            yield CounterMetricFamily(name, doc, value)
