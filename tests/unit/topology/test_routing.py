from __future__ import annotations

from alora_serve.topology.routing import kv_node_of, rank_by_locality, session_id


def test_session_names_the_kv_node_and_the_conversation() -> None:
    first = session_id("node-a", "acme", "conversation one")
    assert kv_node_of(first) == "node-a"
    assert first == session_id("node-a", "acme", "conversation one")  # stable
    assert first != session_id("node-a", "globex", "conversation one")  # per tenant
    assert kv_node_of("no-separator") is None


def test_local_replicas_come_first_in_affinity_order() -> None:
    node = {"r1": "b", "r2": "a", "r3": "b", "r4": "a"}
    ranked = ["r1", "r2", "r3", "r4"]  # the ring's order for this conversation
    assert rank_by_locality(ranked, node.get, "a") == ["r2", "r4", "r1", "r3"]
    assert rank_by_locality(ranked, node.get, "c") == ranked  # no local replica: affinity
    assert rank_by_locality(ranked, node.get, None) == ranked
