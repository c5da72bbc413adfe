"""The front door's figures: every intrinsic call by outcome, where its time went, and how
many prompt tokens aLoRA reused; calls at once, refusals. Published through Ray's
metrics (``alora_serve.topology.metrics``); labels never carry a tenant."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alora_serve.gateway.admission import Admission
from alora_serve.intrinsics.call import IntrinsicResult

# Seconds: an aLoRA call on reused KV takes tens of milliseconds on a GPU, a second or
# so on a CPU; a cold prefill of a long conversation, up to minutes.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
UNKNOWN_INTRINSIC = "_unknown"  # a name outside the catalog is never a label value


class CallMetrics:
    """Per intrinsic: calls by status, latency, time to first token, phases, tokens."""

    def __init__(self, intrinsics: Collection[str]) -> None:
        self._known = frozenset(intrinsics)
        buckets = {"buckets": LATENCY_BUCKETS_S, "registry": None}
        self.requests = Counter(
            "alora_intrinsic_requests",
            "Intrinsic calls finished, by intrinsic and gRPC status",
            ["intrinsic", "code"],
            registry=None,
        )
        self.failures = Counter(
            "alora_intrinsic_failures",
            "Intrinsic calls failed, by the error's reason (e.g. INVOCATION_NOT_FOUND, "
            "OUTPUT_TRUNCATED)",
            ["intrinsic", "reason"],
            registry=None,
        )
        self.latency = Histogram(
            "alora_intrinsic_latency_seconds",
            "Intrinsic calls end to end, as the front door saw them",
            ["intrinsic", "code"],
            **buckets,
        )
        self.first_token = Histogram(
            "alora_intrinsic_time_to_first_token_seconds",
            "From the call's arrival to the adapter's first token",
            ["intrinsic"],
            **buckets,
        )
        self.phases = Histogram(
            "alora_intrinsic_phase_seconds",
            "Where a successful call's time went: queue (admission, routing, transport), "
            "base_kv (leasing or computing the conversation's base KV), adapter_prefill, "
            "decode",
            ["intrinsic", "phase"],
            **buckets,
        )
        self.reused = Counter(
            "alora_intrinsic_prompt_tokens_reused",
            "Prompt tokens whose KV was already computed when the call began (the aLoRA win)",
            ["intrinsic"],
            registry=None,
        )
        self.computed = Counter(
            "alora_intrinsic_prompt_tokens_computed",
            "Prompt tokens computed for the call (its invocation, and any base KV missing)",
            ["intrinsic"],
            registry=None,
        )
        self.generated = Counter(
            "alora_intrinsic_generated_tokens",
            "Tokens the adapters generated",
            ["intrinsic"],
            registry=None,
        )

    def collectors(self) -> list[Collector]:
        return [
            self.requests,
            self.failures,
            self.latency,
            self.first_token,
            self.phases,
            self.reused,
            self.computed,
            self.generated,
        ]

    def succeeded(self, results: Sequence[IntrinsicResult]) -> None:
        for result in results:
            name, timings, usage = self._label(result.name), result.timings, result.usage
            self.requests.labels(name, "OK").inc()
            self.latency.labels(name, "OK").observe(timings.total_s)
            self.first_token.labels(name).observe(
                timings.queue_s + timings.base_kv_s + timings.adapter_prefill_s
            )
            for phase in ("queue", "base_kv", "adapter_prefill", "decode"):
                self.phases.labels(name, phase).observe(getattr(timings, f"{phase}_s"))
            self.reused.labels(name).inc(usage.reused_prompt_tokens)
            self.computed.labels(name).inc(usage.computed_prompt_tokens)
            self.generated.labels(name).inc(usage.generated_tokens)

    def failed(self, intrinsics: Sequence[str], code: str, reason: str, seconds: float) -> None:
        for name in map(self._label, intrinsics):
            self.requests.labels(name, code).inc()
            self.failures.labels(name, reason).inc()
            self.latency.labels(name, code).observe(seconds)

    def _label(self, intrinsic: str) -> str:
        return intrinsic if intrinsic in self._known else UNKNOWN_INTRINSIC


class GatewayCollector(Collector):
    """Calls at once against the limit, finished calls by method and status, and calls
    refused for lack of room, by reason."""

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
        rejected = CounterMetricFamily(
            "alora_gateway_rejected_calls",
            "calls refused with RESOURCE_EXHAUSTED (back-pressure), by reason",
            labels=["reason"],
        )
        for reason, count in sorted(admission.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        finished = CounterMetricFamily(
            "alora_gateway_calls",
            "finished calls by gRPC method or HTTP route, and status",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(admission.finished.items()):
            finished.add_metric([method, code], count)
        yield finished
