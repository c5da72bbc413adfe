"""Replica metrics in Ray's metrics system.

Prometheus scrapes Ray's metrics endpoint, and Serve tags each series with application,
deployment and replica. The figures are defined once, as prometheus_client collectors
next to what they measure (`alora_serve.kv.store.metrics`, `alora_serve.transfer.metrics`). A
replica samples them every few seconds and publishes every sample as a Ray gauge of the
same name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import Collector

PUBLISH_INTERVAL_S = 5.0
logger = logging.getLogger(__name__)


class RayMetricsBridge:
    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = list(collectors)
        self._gauges: dict[str, Any] = {}

    def publish(self) -> None:
        from ray.serve.metrics import Gauge

        for collector in self._collectors:
            for family in collector.collect():
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue  # prometheus_client's counter timestamps
                    gauge = self._gauges.get(sample.name)
                    if gauge is None:
                        gauge = self._gauges[sample.name] = Gauge(
                            sample.name,
                            description=family.documentation,
                            tag_keys=tuple(sample.labels),
                        )
                    gauge.set(sample.value, tags=dict(sample.labels) or None)

    async def publish_forever(self, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        while True:
            try:
                self.publish()
            except Exception:  # metrics must never take the replica down
                logger.exception("publishing replica metrics failed")
            await asyncio.sleep(interval_s)
