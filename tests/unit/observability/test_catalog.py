"""The catalog of exported names holds what our collectors export, under the names Ray
gives them; dashboards and rules are checked against the catalog."""

from __future__ import annotations

from types import SimpleNamespace

from alora_serve.engine.metrics import VLLM_METRICS
from alora_serve.engine.types import Usage
from alora_serve.gateway.admission import Admission
from alora_serve.gateway.metrics import CallMetrics, GatewayCollector
from alora_serve.intrinsics.call import IntrinsicResult, Timings
from alora_serve.kv.store.block_pool import PoolStats
from alora_serve.kv.store.metrics import KVStoreCollector
from alora_serve.observability.catalog import ALORA, VLLM
from alora_serve.prefill.metrics import LeaseCollector
from alora_serve.topology.metrics import ray_metric_name
from alora_serve.transfer.metrics import TransferCollector, TransferCounts, transfer_latency


def _collectors():
    calls = CallMetrics(["answerability"])
    result = IntrinsicResult("answerability", {}, "{}", Usage(100, 90, 3), Timings(total_s=1))
    calls.succeeded([result])
    calls.failed(["answerability"], "INVALID_ARGUMENT", "INVOCATION_NOT_FOUND", 0.1)
    admission = Admission(4)
    admission.record("RunIntrinsics", "RESOURCE_EXHAUSTED", "OVERLOADED")
    stats = PoolStats(**dict.fromkeys(PoolStats.__dataclass_fields__, 0))
    service = SimpleNamespace(
        active_leases=0, expired_leases=0, limits=SimpleNamespace(max_leases=8)
    )
    latency = transfer_latency()
    latency.labels("in_place").observe(0.01)
    return [
        *calls.collectors(),
        GatewayCollector(admission),
        KVStoreCollector(lambda: stats, 1024, "prefill"),
        LeaseCollector(service),
        TransferCollector(TransferCounts),
        latency,
    ]


def _exported(collectors) -> set[str]:
    return {
        "ray_" + ray_metric_name(sample.name)
        for collector in collectors
        for family in collector.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_the_catalog_names_exactly_what_our_collectors_export() -> None:
    assert _exported(_collectors()) == ALORA


def test_the_catalog_names_every_re_exported_vllm_metric() -> None:
    families = {ray_metric_name("ray_" + name) for name in VLLM_METRICS}
    stems = {name.removesuffix("_total") for name in VLLM} | {
        name.rsplit("_", 1)[0] for name in VLLM if name.endswith(("_bucket", "_sum", "_count"))
    }
    assert families <= stems
    assert len(families) == len(VLLM_METRICS)
