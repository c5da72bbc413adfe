"""Every series the dashboards and rules may read, by the name Prometheus scrapes: Ray's
``ray_`` prefix, characters Ray does not allow (vLLM's ``:``) as ``_``. A unit test holds
our own names to what the collectors export; an integration test holds all of them to a
real scrape of the main job."""

from __future__ import annotations


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


ALORA = frozenset(
    {
        # the front door (role ingress)
        "ray_alora_intrinsic_requests_total",
        "ray_alora_intrinsic_failures_total",
        *_histogram("ray_alora_intrinsic_latency_seconds"),
        *_histogram("ray_alora_intrinsic_time_to_first_token_seconds"),
        *_histogram("ray_alora_intrinsic_phase_seconds"),
        "ray_alora_intrinsic_prompt_tokens_reused_total",
        "ray_alora_intrinsic_prompt_tokens_computed_total",
        "ray_alora_intrinsic_generated_tokens_total",
        "ray_alora_gateway_in_flight_calls",
        "ray_alora_gateway_max_in_flight_calls",
        "ray_alora_gateway_calls_total",
        "ray_alora_gateway_rejected_calls_total",
        # KV stores (roles prefill, decode, colocated)
        "ray_alora_kv_store_bytes",
        "ray_alora_kv_store_capacity_bytes",
        "ray_alora_kv_store_pinned_bytes",
        "ray_alora_kv_store_blocks",
        "ray_alora_kv_store_hits_total",
        "ray_alora_kv_store_misses_total",
        "ray_alora_kv_store_evictions_total",
        "ray_alora_kv_store_expirations_total",
        # the prefill service's leases
        "ray_alora_prefill_leases",
        "ray_alora_prefill_leases_limit",
        "ray_alora_prefill_leases_expired_total",
        # the transfer layer (role decode)
        "ray_alora_transfer_blocks_total",
        "ray_alora_transfer_bytes_total",
        *_histogram("ray_alora_transfer_seconds"),
        "ray_alora_transfer_local_hits_total",
        "ray_alora_transfer_recomputed_total",
        "ray_alora_transfer_recomputed_tokens_total",
    }
)
# The engines' own (alora_serve.engine.metrics.VLLM_METRICS), per role.
VLLM = frozenset(
    {
        *_histogram("ray_vllm_time_to_first_token_seconds"),
        *_histogram("ray_vllm_inter_token_latency_seconds"),
        *_histogram("ray_vllm_request_queue_time_seconds"),
        *_histogram("ray_vllm_request_prefill_time_seconds"),
        *_histogram("ray_vllm_request_decode_time_seconds"),
        "ray_vllm_num_requests_running",
        "ray_vllm_num_requests_waiting",
        "ray_vllm_kv_cache_usage_perc",
        "ray_vllm_prefix_cache_queries_total",
        "ray_vllm_prefix_cache_hits_total",
        "ray_vllm_prompt_tokens_total",
        "ray_vllm_generation_tokens_total",
        "ray_vllm_num_preemptions_total",
    }
)
# Ray Serve's own, that the dashboard reads (queues per deployment).
SERVE = frozenset(
    {
        "ray_serve_deployment_queued_queries",
        "ray_serve_replica_processing_queries",
        "ray_serve_num_http_requests_total",
        "ray_serve_deployment_request_counter_total",
    }
)
EXPORTED = ALORA | VLLM | SERVE
