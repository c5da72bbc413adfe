"""The dashboard's panels, section by section (``dashboard.py`` lays them out)."""

from __future__ import annotations

from deploy.observability.grafana import gauge, panel, quantile, rate, ratio, recorded

CALLS, KV, TRANSFER, GATEWAY, VLLM = (
    "ray_alora_intrinsic",
    "ray_alora_kv_store",
    "ray_alora_transfer",
    "ray_alora_gateway",
    "ray_vllm",
)


def calls() -> list[dict]:
    return [
        panel(
            "Requests by intrinsic and code",
            "reqps",
            "Finished calls per second at the front door, by gRPC status code.",
            rate(f"{CALLS}_requests_total", "intrinsic, code"),
        ),
        panel(
            "Error ratio by intrinsic",
            "percentunit",
            "Share of calls that did not end OK (recording rule, 5m). Alert above 5%.",
            recorded("intrinsic:alora_intrinsic_errors:ratio_rate5m", "intrinsic"),
            max=1,
        ),
        panel(
            "Failures by reason",
            "reqps",
            "Failed calls per second by intrinsic and failure reason.",
            rate(f"{CALLS}_failures_total", "intrinsic, reason"),
        ),
        panel(
            "End-to-end latency p50 / p99",
            "s",
            "Call latency at the front door. Alert while p99 stays above 10 s.",
            quantile(0.5, f"{CALLS}_latency_seconds", "intrinsic", "p50"),
            quantile(0.99, f"{CALLS}_latency_seconds", "intrinsic", "p99"),
        ),
        panel(
            "Time to first token p99",
            "s",
            "Time from a call's arrival to its first generated token.",
            quantile(0.99, f"{CALLS}_time_to_first_token_seconds", "intrinsic"),
        ),
        panel(
            "Phase p99 (stacked)",
            "s",
            "p99 of each phase of a call (queue, base_kv, adapter_prefill, decode), stacked: "
            "pick one intrinsic to read the stack as one call.",
            quantile(0.99, f"{CALLS}_phase_seconds", "intrinsic, phase"),
            stack=True,
        ),
    ]


def reuse() -> list[dict]:
    return [
        panel(
            "aLoRA reuse ratio",
            "percentunit",
            "Share of prompt tokens read from the base model's KV instead of computed "
            "(recording rules, 5m). Alert below 50%.",
            recorded("intrinsic:alora_prompt_tokens_reuse_ratio:rate5m", "intrinsic"),
            recorded("application:alora_prompt_tokens_reuse_ratio:rate5m", "application", "all"),
            max=1,
        ),
        panel(
            "Prompt tokens reused vs computed, generated tokens",
            "short",
            "Tokens per second.",
            rate(f"{CALLS}_prompt_tokens_reused_total", "intrinsic", "reused"),
            rate(f"{CALLS}_prompt_tokens_computed_total", "intrinsic", "computed"),
            rate(f"{CALLS}_generated_tokens_total", "intrinsic", "generated"),
        ),
    ]


def kv_store() -> list[dict]:
    return [
        panel(
            "KV store bytes, capacity, pinned",
            "bytes",
            "KV store size per role, all replicas together. "
            "Alert when one replica's store is over 90% pinned.",
            gauge(f"{KV}_bytes", "role, store", "used"),
            gauge(f"{KV}_capacity_bytes", "role, store", "capacity"),
            gauge(f"{KV}_pinned_bytes", "role, store", "pinned"),
        ),
        panel(
            "KV store hit ratio",
            "percentunit",
            "Share of store lookups that found their blocks (recording rule, 5m).",
            recorded("role_store:alora_kv_store_hits:ratio_rate5m", "role, store"),
            max=1,
        ),
        panel(
            "KV store evictions and expirations",
            "short",
            "Blocks per second dropped for room (LRU) or for age (TTL).",
            rate(f"{KV}_evictions_total", "role, store", "evicted"),
            rate(f"{KV}_expirations_total", "role, store", "expired"),
        ),
        panel(
            "KV store blocks",
            "short",
            "Blocks held per role, all replicas together.",
            gauge(f"{KV}_blocks", "role, store"),
        ),
    ]


def leases_and_transfer() -> list[dict]:
    return [
        panel(
            "Prefill leases held vs limit",
            "short",
            "Leases on base KV held for decode workers, per prefill replica.",
            gauge("ray_alora_prefill_leases", "replica", "held"),
            gauge("ray_alora_prefill_leases_limit", "replica", "limit"),
        ),
        panel(
            "Prefill lease expirations",
            "short",
            "Leases per second that expired instead of being released. Alert while above 0.",
            rate("ray_alora_prefill_leases_expired_total", "replica"),
        ),
        panel(
            "KV transfer bytes/s by transport",
            "Bps",
            "Base KV made available to decode workers: in_place (same host) or pulled.",
            rate(f"{TRANSFER}_bytes_total", "transport"),
        ),
        panel(
            "KV transfer p99 latency by transport",
            "s",
            "p99 time to make a lease's blocks available to a decode worker.",
            quantile(0.99, f"{TRANSFER}_seconds", "transport"),
        ),
        panel(
            "Transfer local hits and fallback recomputes",
            "short",
            "Per second: prefixes already in the decode worker's store, and prefixes "
            "recomputed because their transfer failed.",
            rate(f"{TRANSFER}_local_hits_total", "role", "local hits"),
            rate(f"{TRANSFER}_recomputed_total", "role", "recomputed"),
        ),
        panel(
            "Fallback recomputed tokens/s",
            "short",
            "Prompt tokens per second that decode workers recomputed after a failed transfer.",
            rate(f"{TRANSFER}_recomputed_tokens_total", "role"),
        ),
    ]


def gateway() -> list[dict]:
    return [
        panel(
            "Gateway in-flight calls vs limit",
            "short",
            "Calls served at once per ingress replica, and the admission limit.",
            gauge(f"{GATEWAY}_in_flight_calls", "replica", "in flight"),
            gauge(f"{GATEWAY}_max_in_flight_calls", "replica", "limit"),
        ),
        panel(
            "Gateway rejections by reason",
            "reqps",
            "Calls refused with RESOURCE_EXHAUSTED. Alert while above 0.",
            rate(f"{GATEWAY}_rejected_calls_total", "reason"),
        ),
        panel(
            "Gateway calls by method and code",
            "reqps",
            "Finished gRPC and HTTP calls per second.",
            rate(f"{GATEWAY}_calls_total", "method, code"),
        ),
    ]


def vllm() -> list[dict]:
    return [
        panel(
            "vLLM time to first token p99 by role",
            "s",
            "The engines' own time to first token.",
            quantile(0.99, f"{VLLM}_time_to_first_token_seconds", "role"),
        ),
        panel(
            "vLLM inter-token latency p99 by role",
            "s",
            "Time between generated tokens.",
            quantile(0.99, f"{VLLM}_inter_token_latency_seconds", "role"),
        ),
        panel(
            "vLLM requests running / waiting by role",
            "short",
            "Requests scheduled in the engines, and requests waiting for room.",
            gauge(f"{VLLM}_num_requests_running", "role", "running"),
            gauge(f"{VLLM}_num_requests_waiting", "role", "waiting"),
        ),
        panel(
            "vLLM KV cache usage by role",
            "percentunit",
            "Share of the KV cache in use, in the fullest engine of each role.",
            gauge(f"{VLLM}_kv_cache_usage_perc", "role", "fullest", how="max"),
            max=1,
        ),
        panel(
            "vLLM prefix-cache hit rate by role",
            "percentunit",
            "Share of queried prompt tokens found in vLLM's own prefix cache.",
            ratio(f"{VLLM}_prefix_cache_hits_total", f"{VLLM}_prefix_cache_queries_total", "role"),
            max=1,
        ),
        panel(
            "vLLM preemptions by role",
            "short",
            "Requests preempted per second for lack of KV cache.",
            rate(f"{VLLM}_num_preemptions_total", "role"),
        ),
    ]


def serve() -> list[dict]:
    return [
        panel(
            "Serve queued queries",
            "short",
            "Requests waiting in Ray Serve for a replica, per deployment.",
            gauge("ray_serve_deployment_queued_queries", "application, deployment"),
        ),
        panel(
            "Serve replicas' processing queries",
            "short",
            "Requests being processed by each deployment's replicas.",
            gauge("ray_serve_replica_processing_queries", "application, deployment"),
        ),
    ]


SECTIONS = [
    ("Intrinsic calls", calls),
    ("aLoRA reuse", reuse),
    ("KV store", kv_store),
    ("Prefill leases and KV transfer", leases_and_transfer),
    ("Gateway", gateway),
    ("vLLM engines", vllm),
    ("Ray Serve", serve),
]
