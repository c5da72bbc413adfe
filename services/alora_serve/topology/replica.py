"""What every replica knows about itself."""

from __future__ import annotations

import contextlib

from alora_serve.observability.config import ObservabilityConfig
from alora_serve.observability.logs import configure_logging
from alora_serve.observability.tracing import configure_tracing


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


def observe(config: ObservabilityConfig, role: str) -> None:
    """Structured logs and (when configured) traces for this replica's process."""
    configure_logging(config.log_format, config.log_level, _serving_fields)
    configure_tracing(config.otlp_endpoint, f"alora-serve-{role}", config.trace_sample_ratio)


def _serving_fields() -> dict[str, str]:
    """The request a log record belongs to (the front door's id, which Serve carries to
    every replica a call reaches) and the deployment that wrote it."""
    from ray import serve
    from ray.serve import context as serve_context
    from ray.serve.exceptions import RayServeException

    request = serve_context._get_serve_request_context()
    fields = {"request_id": request.request_id if request else ""}
    with contextlib.suppress(RayServeException):  # not in a replica
        fields["deployment"] = serve.get_replica_context().deployment
    return fields
