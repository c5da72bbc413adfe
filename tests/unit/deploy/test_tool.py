"""The deploy tool against an in-process fake Kubernetes API server (kmock): create,
update, watch, patch and the API server's errors, with every object checked first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import kmock
import pytest
import yaml
from kubernetes import client

from alora_serve.deploy import chart, rayservice, tool
from alora_serve.deploy.cluster import Cluster
from alora_serve.deploy.errors import ChartError, DeployError

NAMESPACE = "intrinsics"
RELEASE = "alora"
KINDS = {
    "ray.io/v1/rayservices": "RayService",
    "v1/services": "Service",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
    "gateway.networking.k8s.io/v1/grpcroutes": "GRPCRoute",
    "monitoring.coreos.com/v1/podmonitors": "PodMonitor",
    "monitoring.coreos.com/v1/servicemonitors": "ServiceMonitor",
}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


@pytest.fixture
def api(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    for resource, kind in KINDS.items():
        kmock.resources[resource] = kmock_info(kind)
    return kmock


def kmock_info(kind: str) -> kmock.ResourceInfo:
    return kmock.ResourceInfo(kind=kind, namespaced=True, verbs=VERBS)


def _cluster(api: kmock.KubernetesEmulator) -> Cluster:
    """Off the event loop: the dynamic client asks the fake server for discovery at once."""
    configuration = client.Configuration()
    configuration.host = str(api.url)
    return Cluster(client.ApiClient(configuration), NAMESPACE)


async def _run(function: Callable[..., Any], *args: Any) -> Any:
    """The kubernetes client is synchronous; the fake server runs on this event loop."""
    return await asyncio.to_thread(function, *args)


def _values() -> dict[str, Any]:
    return chart.load_values(chart.EXAMPLES_DIR / "cpu-kind.yaml")


def _requests(api: kmock.KubernetesEmulator, method: str) -> int:
    return len(api[method])


async def test_apply_creates_every_rendered_object_then_updates_them(api):
    cluster, said = await _run(_cluster, api), []
    notes = await _run(tool.apply, cluster, _values(), RELEASE, said.append)
    assert said == [
        "RayService alora-alora-serve: created",
        "Service alora-alora-serve-grpc: created",
    ]
    assert "port-forward svc/alora-alora-serve-grpc" in notes
    stored = await _run(tool.fetch, cluster, RELEASE)
    rendered = chart.manifests(chart.render(_values(), chart.Release(RELEASE, NAMESPACE)))
    (expected,) = [o for o in rendered if o["kind"] == "RayService"]
    assert stored["spec"] == expected["spec"]
    said.clear()
    upgraded = _values() | {"gateway": {"max_in_flight": 16}}
    await _run(tool.apply, cluster, upgraded, RELEASE, said.append)
    assert said == [
        "RayService alora-alora-serve: updated",
        "Service alora-alora-serve-grpc: updated",
    ]
    topology = rayservice.topology(await _run(tool.fetch, cluster, RELEASE))
    assert topology["gateway"]["max_in_flight"] == 16
    assert _requests(api, "patch") == 2


async def test_bad_values_reach_no_api_server(api):
    bad = _values() | {"workerGroups": [{"name": "cpu", "replicas": -1}]}
    with pytest.raises(ChartError, match="replicas"):
        await _run(tool.apply, await _run(_cluster, api), bad, RELEASE, print)
    assert _requests(api, "post") == _requests(api, "patch") == 0  # only discovery ran


async def test_an_api_server_refusal_is_shown_plainly(api):
    refusal = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'rayservices.ray.io is forbidden: User "dev" cannot create resource',
        "reason": "Forbidden",
        "code": 403,
    }
    api["post", kmock.resource("ray.io/v1/rayservices")] << 403 << refusal
    with pytest.raises(DeployError) as e:
        await _run(tool.apply, await _run(_cluster, api), _values(), RELEASE, print)
    message = str(e.value)
    assert message.startswith("creating RayService intrinsics/alora-alora-serve: the API server")
    assert "403" in message and 'User "dev" cannot create resource' in message


async def test_status_of_a_missing_release_says_to_install_it(api):
    with pytest.raises(DeployError, match="install it first"):
        await _run(tool.fetch, await _run(_cluster, api), "nope")


async def test_a_cluster_without_kuberay_is_named(kmock):
    with pytest.raises(DeployError, match=r"does not serve ray\.io/v1 RayService"):
        await _run(tool.apply, await _run(_cluster, kmock), _values(), RELEASE, print)


def _ready_status() -> dict[str, Any]:
    deployments = ["prefill", "decode-answerability", "decode-rag-checks", "ingress"]
    return {
        "serviceStatus": "Running",
        "conditions": [{"type": "Ready", "status": "True", "message": "serving"}],
        "activeServiceStatus": {
            "applicationStatuses": {
                "alora": {
                    "status": "RUNNING",
                    "serveDeploymentStatuses": {
                        name: {"status": "HEALTHY"} for name in deployments
                    },
                }
            },
            "rayClusterStatus": {"readyWorkerReplicas": 2, "desiredWorkerReplicas": 2},
        },
    }


async def test_wait_follows_the_rayservice_until_kuberay_reports_it_ready(api):
    cluster = await _run(_cluster, api)
    await _run(tool.apply, cluster, _values(), RELEASE, print)
    said: list[str] = []
    released = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        released.set()

    waiting = asyncio.create_task(_run(tool.wait_ready, cluster, RELEASE, 60, say))
    await _run(released.wait, 10)  # the first state was seen through the watch
    starting = {"status": {"serviceStatus": "WaitForServeDeploymentReady"}}
    await _run(cluster.merge_patch, "ray.io/v1", "RayService", "alora-alora-serve", starting)
    patch = {"status": _ready_status()}
    await _run(cluster.merge_patch, "ray.io/v1", "RayService", "alora-alora-serve", patch)
    final = await asyncio.wait_for(waiting, 30)
    assert final.ready
    assert said[0].startswith("not ready: Pending, waiting for prefill")
    assert said[-1] == "ready: RUNNING, pods 2/2"
    assert [d.status for d in final.deployments] == ["HEALTHY"] * 3


async def test_status_reports_deployments_replicas_and_autoscaling_targets(api):
    cluster = await _run(_cluster, api)
    await _run(tool.apply, cluster, _values(), RELEASE, print)
    scaled = _values()
    scaled["serve"]["decode"][0]["scaling"] = {
        "autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2}
    }
    await _run(tool.apply, cluster, scaled, RELEASE, print)
    current = rayservice.status(await _run(tool.fetch, cluster, RELEASE))
    assert not current.ready
    assert [(d.name, d.replicas, d.status) for d in current.deployments] == [
        ("prefill", "1", "-"),
        ("decode-answerability", "1..3 (target 2 in flight per replica)", "-"),
        ("decode-rag-checks", "1", "-"),
    ]


async def test_adding_and_removing_intrinsics_patches_the_serve_config(api):
    cluster = await _run(_cluster, api)
    await _run(tool.apply, cluster, _values(), RELEASE, print)
    said: list[str] = []
    removed = await _run(
        tool.change_intrinsics,
        cluster,
        RELEASE,
        lambda t: rayservice.without_intrinsic(t, "answerability"),
        said.append,
    )
    assert "answerability" not in removed
    topology = rayservice.topology(await _run(tool.fetch, cluster, RELEASE))
    assert [g["name"] for g in topology["decode"]] == ["rag-checks"]  # the empty group went
    await _run(
        tool.change_intrinsics,
        cluster,
        RELEASE,
        lambda t: rayservice.with_intrinsic(t, "answerability", None),
        said.append,
    )
    topology = rayservice.topology(await _run(tool.fetch, cluster, RELEASE))
    new = topology["decode"][-1]
    assert new["name"] == "answerability" and new["intrinsics"] == ["answerability"]
    assert new["scaling"]["resources"] == {"alora_group_cpu": 1}  # placed like the others
    assert said[-1].startswith("RayService alora-alora-serve: serveConfigV2 patched")


async def test_an_intrinsic_change_that_breaks_the_topology_is_refused_before_patching(api):
    cluster = await _run(_cluster, api)
    await _run(tool.apply, cluster, _values(), RELEASE, print)
    patches = _requests(api, "patch")

    def bad_mode(topology: dict[str, Any]) -> dict[str, Any]:
        changed = rayservice.with_intrinsic(topology, "my_check", "answerability")
        changed["decode"][0]["mode"] = "merged"  # two intrinsics cannot be merged
        return changed

    with pytest.raises(DeployError, match="merged mode serves exactly one intrinsic"):
        await _run(tool.change_intrinsics, cluster, RELEASE, bad_mode, print)
    with pytest.raises(DeployError, match="is served already"):
        await _run(
            tool.change_intrinsics,
            cluster,
            RELEASE,
            lambda t: rayservice.with_intrinsic(t, "citations", None),
            print,
        )
    assert _requests(api, "patch") == patches


def test_the_tool_names_the_rayservice_as_the_chart_does():
    for release in ("alora", "prod-alora-serve", "x" * 50):
        rendered = chart.manifests(chart.render(_values(), chart.Release(release)))
        (service,) = [o for o in rendered if o["kind"] == "RayService"]
        assert tool.rayservice_name(release) == service["metadata"]["name"]


def test_a_new_intrinsic_joins_a_named_group_as_multi_lora():
    topology = yaml.safe_load("decode: [{name: a, intrinsics: [x]}, {name: b, intrinsics: [y]}]")
    changed = rayservice.with_intrinsic(topology, "z", "a")
    assert changed["decode"][0] == {"name": "a", "intrinsics": ["x", "z"], "mode": "lora"}
    assert topology["decode"][0]["intrinsics"] == ["x"]  # not changed in place
