"""What every replica knows about itself."""

from __future__ import annotations


def node_id() -> str:
    """The Ray node (host) this replica runs on."""
    import ray

    return ray.get_runtime_context().get_node_id()


def replica_identity() -> dict[str, str]:
    """Where this replica runs and which actor it is (for operators and fault drills)."""
    import ray

    # Serve's replica actors live in Serve's namespace ("serve").
    return {"node": node_id(), "actor": ray.get_runtime_context().get_actor_name()}
