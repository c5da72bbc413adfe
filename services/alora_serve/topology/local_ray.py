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

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"
SINGLE_HOST_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": the node's IP is loopback
# Ray sets it to "token" in this process when it starts a cluster (unless told otherwise) and
# keeps using tokens in this process from then on: it is left as Ray sets it. Unsetting it
# made this process's later clusters start without tokens while its clients still sent
# them, and calls through Serve handles then never arrived.
AUTH_MODE = "RAY_AUTH_MODE"
# Lines Ray's driver never folds together (see keep_log_records_whole): our JSON records.
DEDUP_ALLOW_REGEX = "RAY_DEDUP_LOGS_ALLOW_REGEX"
STRUCTURED_RECORD = '"request_id": '


@dataclass(frozen=True)
class LocalRay:
    address: str
    token_auth: bool  # off only where the user set RAY_AUTH_MODE=disabled


@contextlib.contextmanager
def running(**options: Any) -> Iterator[LocalRay]:
    """A new single-node Ray bound to loopback, for the duration of the block
    (``options``: more ``ray.init`` arguments, e.g. ``num_cpus``)."""
    import ray

    with _single_host_mode():
        ray.init(
            address="local",  # a new instance, even where another Ray runs on this host
            include_dashboard=False,
            configure_logging=False,
            _node_ip_address=LOOPBACK,
            **options,
        )
        try:
            address = ray.get_runtime_context().gcs_address
            yield LocalRay(address, os.environ.get(AUTH_MODE) == "token")
        finally:
            ray.shutdown()


def keep_log_records_whole() -> None:
    """Ray's driver folds the lines that workers print alike but for words with digits
    into one "[repeated Nx across cluster]": the records of two replicas' calls would
    fold into one. Keep the package's structured records whole (Ray reads the setting
    when it is imported: call this first)."""
    os.environ.setdefault(DEDUP_ALLOW_REGEX, STRUCTURED_RECORD)


@contextlib.contextmanager
def _single_host_mode() -> Iterator[None]:
    """Ray's single-host mode while the block runs (this process's later Rays, e.g. a
    test's multi-node cluster, are not affected)."""
    from ray._private import ray_constants

    # Every Ray process started in the block reads it from the environment it inherits;
    # this process read it when it imported Ray, so its copy is set as well.
    saved = os.environ.get(SINGLE_HOST_MODE)
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_HOST_MODE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(SINGLE_HOST_MODE, None)
        else:
            os.environ[SINGLE_HOST_MODE] = saved
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
