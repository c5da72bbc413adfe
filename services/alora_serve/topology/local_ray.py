"""A Ray of this host alone, reachable from this host only: the main job's default.

Ray's servers (GCS, raylet, workers, agents) listen on the node's IP, and its gRPC servers
on every interface, unless the node's IP is loopback, which Ray allows in its single-host
mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what it runs on laptops). Ray's token
authentication (on by default since Ray 2.52) guards them as well. The dashboard, whose
job API runs any code it is sent, is not started. Serve replicas' inter-deployment gRPC
server listens on every interface whatever the node's IP: deployments call
``alora_serve.topology.replica.keep_servers_local`` to bind it to loopback too.

On a cluster Ray is started by ``ray start`` (KubeRay), not here: docs/security.md says
what to do there.
"""

from __future__ import annotations

import os
from typing import Any

LOOPBACK = "127.0.0.1"
SINGLE_HOST_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": the node's IP is loopback


def start(**options: Any) -> None:
    """``ray.init`` of a new single-node Ray bound to loopback (``options``: more
    ``ray.init`` arguments, e.g. ``num_cpus``)."""
    import ray
    from ray._private import ray_constants

    # Every Ray process ray.init starts reads it from the environment it inherits; this
    # process read it when it imported Ray, so its copy is set as well.
    os.environ[SINGLE_HOST_MODE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(
        include_dashboard=False,
        configure_logging=False,
        _node_ip_address=LOOPBACK,
        **options,
    )
