"""Routing intrinsic calls to decode replicas: KV locality first, then session affinity.

The ingress names each call's session as ``<kv node>|<conversation key>``. Replicas on
the node that holds the conversation's KV (the prefill service's) come first: they read
it in place. Within each group, a consistent-hash ring on the conversation key keeps a
conversation on the same replica (its vLLM prefix cache and pulled blocks stay warm);
when that replica is busy, Serve's retry loop moves down the ranking, so a call goes to a
local replica when one is free, else to any replica, which pulls the KV remotely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ray.serve.config import RequestRouterConfig
from ray.serve.experimental.consistent_hash_router import ConsistentHashRouter

Replica = TypeVar("Replica")

SEPARATOR = "|"


def session_id(kv_node: str, tenant: str, conversation: str) -> str:
    """The routing key of a call: where its KV lives, and which conversation it is."""
    key = hashlib.blake2b(f"{tenant}\0{conversation}".encode(), digest_size=12).hexdigest()
    return f"{kv_node}{SEPARATOR}{key}"


def kv_node_of(session: str) -> str | None:
    node, separator, _ = session.partition(SEPARATOR)
    return node if separator else None


def rank_by_locality(
    ranked: Sequence[Replica], node_of: Callable[[Replica], str], kv_node: str | None
) -> list[Replica]:
    """Replicas on ``kv_node`` first, each group keeping the affinity order of ``ranked``."""
    local = [r for r in ranked if node_of(r) == kv_node]
    return local + [r for r in ranked if node_of(r) != kv_node]


class KVLocalityRouter(ConsistentHashRouter):
    def initialize_state(self, **kwargs: Any) -> None:
        super().initialize_state(**kwargs)
        self._num_fallback_replicas = 1 << 16  # rank every replica: any may take the call

    async def choose_replicas(self, candidate_replicas, pending_request=None):
        ranks = await super().choose_replicas(candidate_replicas, pending_request)
        if pending_request is None or not ranks:
            return ranks
        kv_node = kv_node_of(pending_request.metadata.session_id or "")
        ordered = rank_by_locality([r for rank in ranks for r in rank], _node_id, kv_node)
        return [[replica] for replica in ordered]


def _node_id(replica: Any) -> str:
    return replica.node_id


def locality_router_config() -> RequestRouterConfig:
    return RequestRouterConfig(
        request_router_class=f"{KVLocalityRouter.__module__}.{KVLocalityRouter.__qualname__}"
    )
