"""The main job's loopback-only Ray (``topology.local_ray``) leaves this process able to
start and use another Ray afterwards, as a test session or a notebook does."""

from __future__ import annotations

import os

from alora_serve.topology import local_ray

CALL_TIMEOUT_S = 60


def _echo_deployment():
    from ray import serve

    @serve.deployment
    class Echo:
        def echo(self, text: str) -> str:
            return text

    return Echo


def _call_through_a_handle(app: str) -> str:
    from ray import serve

    serve.run(_echo_deployment().bind(), name=app, route_prefix=None)
    try:
        handle = serve.get_deployment_handle("Echo", app_name=app)
        return handle.echo.remote(app).result(timeout_s=CALL_TIMEOUT_S)
    finally:
        serve.shutdown()


def test_a_multi_node_cluster_after_the_local_ray_serves_calls():
    import ray
    from ray.cluster_utils import Cluster

    single_host_mode = os.environ.get(local_ray.SINGLE_HOST_MODE)
    with local_ray.running(num_cpus=1) as node:
        assert node.address.startswith(local_ray.LOOPBACK)
        assert _call_through_a_handle("on-loopback") == "on-loopback"
    assert os.environ.get(local_ray.SINGLE_HOST_MODE) == single_host_mode

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    try:
        ray.init(address=nodes.address, include_dashboard=False, configure_logging=False)
        # Before the fix, Ray's token setting was unset here and this call never arrived.
        assert _call_through_a_handle("on-cluster") == "on-cluster"
    finally:
        ray.shutdown()
        nodes.shutdown()
