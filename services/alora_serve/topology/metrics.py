"""Replica metrics in Ray's metrics system.

Prometheus scrapes Ray's metrics endpoint (one per node; the main job's is on a fixed
loopback port), and Serve tags each series with application, deployment and replica. The
figures are defined once, as prometheus_client collectors next to what they measure
(`alora_serve.gateway.metrics`, `alora_serve.kv.store.metrics`, ...). A replica samples them
every few seconds and publishes every sample as a Ray gauge of the same name (Ray adds
its ``ray_`` prefix; characters Ray's names do not allow, as vLLM's colons, become
``_``), tagged with the replica's role. Counters and histograms thus arrive typed as
gauges; PromQL's rate, increase and histogram_quantile read them as usual.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import Collector

PUBLISH_INTERVAL_S = 5.0
_RAY_DISALLOWED = re.compile(r"[^a-zA-Z0-9_]")
logger = logging.getLogger(__name__)


def ray_metric_name(sample: str) -> str:
    """The name Ray gives a gauge for ``sample`` (Prometheus scrapes it with ``ray_``)."""
    return _RAY_DISALLOWED.sub("_", sample)


class RayMetricsBridge:
    def __init__(self, collectors: Sequence[Collector], role: str) -> None:
        self._collectors = list(collectors)
        self._role = role  # ingress, prefill, decode or colocated
        self._gauges: dict[str, Any] = {}

    def publish(self) -> None:
        from ray.serve.metrics import Gauge

        for collector in self._collectors:
            for family in collector.collect():
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue  # prometheus_client's counter timestamps
                    tags = {**sample.labels, "role": self._role}
                    gauge = self._gauges.get(sample.name)
                    if gauge is None:
                        gauge = self._gauges[sample.name] = Gauge(
                            ray_metric_name(sample.name),
                            description=family.documentation,
                            tag_keys=tuple(tags),
                        )
                    gauge.set(sample.value, tags=tags)

    async def publish_forever(self, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        while True:
            try:
                self.publish()
            except Exception:  # metrics must never take the replica down
                logger.exception("publishing replica metrics failed")
            await asyncio.sleep(interval_s)
