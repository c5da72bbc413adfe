"""The vLLM metrics chosen for re-export come out whole; vLLM's others stay behind."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alora_serve.engine.metrics import VLLMCollector


def test_only_the_chosen_vllm_families_are_collected_with_all_their_samples() -> None:
    registry = CollectorRegistry()
    labels = ["model_name", "engine"]
    hits = Counter("vllm:prefix_cache_hits", "hits", labels, registry=registry)
    first_token = Histogram(
        "vllm:time_to_first_token_seconds", "ttft", labels, buckets=(0.1, 1), registry=registry
    )
    running = Gauge("vllm:num_requests_running", "running", labels, registry=registry)
    unchosen = Histogram("vllm:request_params_n", "n", labels, registry=registry)
    hits.labels("m", "0").inc(3)
    first_token.labels("m", "0").observe(0.5)
    running.labels("m", "0").set(2)
    unchosen.labels("m", "0").observe(1)

    families = {family.name: family for family in VLLMCollector(registry).collect()}

    assert set(families) == {
        "vllm:prefix_cache_hits",
        "vllm:time_to_first_token_seconds",
        "vllm:num_requests_running",
    }
    samples = {
        s.name: s.value for f in families.values() for s in f.samples if "le" not in s.labels
    }
    assert samples["vllm:prefix_cache_hits_total"] == 3
    assert samples["vllm:time_to_first_token_seconds_count"] == 1
    assert samples["vllm:num_requests_running"] == 2
    buckets = [s for s in families["vllm:time_to_first_token_seconds"].samples if "le" in s.labels]
    assert [(s.labels["le"], s.value) for s in buckets] == [("0.1", 0), ("1.0", 1), ("+Inf", 1)]
