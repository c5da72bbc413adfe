"""The vLLM engine's own Prometheus metrics (its ``PrometheusStatLogger``, which records
into prometheus_client's default registry in the process that runs the engine), chosen
for re-export: latency from vLLM's view, its queues, its KV cache and prefix cache."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

VLLM_METRICS = frozenset(
    {
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries",
        "vllm:prefix_cache_hits",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:num_preemptions",
    }
)


_SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


class VLLMCollector(Collector):
    """The families of ``VLLM_METRICS`` in ``registry`` (vLLM's: the default one). Only
    their collectors run: the registry holds vLLM's other metrics too."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        samples = {name + suffix for name in VLLM_METRICS for suffix in _SAMPLE_SUFFIXES}
        self._chosen = registry.restricted_registry(samples)

    def collect(self) -> Iterator[Metric]:
        for family in self._chosen.collect():
            if family.name in VLLM_METRICS:  # not a collector without names that came along
                yield family
