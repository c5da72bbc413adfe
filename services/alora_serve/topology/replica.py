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


def keep_servers_local() -> None:
    """On a node whose IP is loopback (``alora_serve.topology.local_ray``), bind this
    replica's inter-deployment gRPC server to loopback as well: Serve binds it to every
    interface (``[::]``), and starts it after the deployment's constructor, which calls
    this first. Idempotent; a no-op on cluster nodes."""
    import ray
    from ray.serve._private import replica

    from alora_serve.topology.local_ray import LOOPBACK

    bind = replica.add_port_to_grpc_server
    if ray.util.get_node_ip_address() != LOOPBACK or getattr(bind, "on_loopback", False):
        return

    def bind_on_loopback(server, address: str):
        host, _, port = address.rpartition(":")
        if host in ("[::]", "0.0.0.0", ""):
            address = f"{LOOPBACK}:{port}"
        return bind(server, address)

    bind_on_loopback.on_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_on_loopback
