"""A Ray of this host alone, reachable from this host only: the main job's default.

Ray's servers (GCS, raylet, workers, agents) listen on the node's IP, and its gRPC servers
on every interface, unless the node's IP is loopback, which Ray allows in its single-host
mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what it runs on laptops). Ray's token
authentication guards them as well (the token is kept in ``~/.ray/auth_token``). The
dashboard, whose job API runs any code it is sent, is not started. Serve replicas'
inter-deployment gRPC server listens on every interface whatever the node's IP:
deployments call ``alora_serve.topology.replica.keep_servers_local`` to bind it to
loopback too.

On a cluster Ray is started by ``ray start`` (KubeRay), not here: docs/security.md says
what to do there.
"""

from __future__ import annotations

import os
from typing import Any

LOOPBACK = "127.0.0.1"
SINGLE_HOST_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": the node's IP is loopback


def start(**options: Any) -> str:
    """``ray.init`` of a new single-node Ray bound to loopback (``options``: more
    ``ray.init`` arguments, e.g. ``num_cpus``); returns its address."""
    import ray

    _single_host_mode()
    ray.init(
        include_dashboard=False,
        configure_logging=False,
        _node_ip_address=LOOPBACK,
        **options,
    )
    return ray.get_runtime_context().gcs_address


def connect(address: str) -> None:
    """Join a Ray that ``start`` started, from another process on this host (operators,
    tests); the cluster's token comes from ``~/.ray/auth_token``."""
    import ray

    _single_host_mode()
    ray.init(address=address, configure_logging=False, logging_level="ERROR")


def _single_host_mode() -> None:
    from ray._private import ray_constants

    # Every Ray process started from here reads it from the environment it inherits; this
    # process read it when it imported Ray, so its copy is set as well.
    os.environ[SINGLE_HOST_MODE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
