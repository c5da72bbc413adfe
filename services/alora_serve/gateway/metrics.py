"""The gateway's figures as a Prometheus collector (published through Ray's metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alora_serve.gateway.admission import Admission


class GatewayCollector(Collector):
    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        admission = self._admission
        yield GaugeMetricFamily(
            "alora_gateway_in_flight_calls",
            "calls being served (gRPC and HTTP)",
            admission.in_flight,
        )
        yield GaugeMetricFamily(
            "alora_gateway_max_in_flight_calls", "limit of calls served at once", admission.limit
        )
        yield CounterMetricFamily(
            "alora_gateway_rejected_calls",
            "calls refused with RESOURCE_EXHAUSTED because the gateway was at its limit",
            admission.rejected,
        )
        finished = CounterMetricFamily(
            "alora_gateway_calls",
            "finished calls by gRPC method or HTTP route, and status",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(admission.finished.items()):
            finished.add_metric([method, code], count)
        yield finished
