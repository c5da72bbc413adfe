"""What ``alora-serve deploy`` does: install or upgrade a release from values, wait until
it serves, add or remove an intrinsic, report status. Every object is checked (as the
chart's tests check them) before the API server sees it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alora_serve.deploy import chart, rayservice, validate
from alora_serve.deploy.cluster import Cluster
from alora_serve.deploy.errors import DeployError

Say = Callable[[str], None]


def rayservice_name(release: str) -> str:
    """The chart's name for a release's RayService (templates/_helpers.tpl fullname)."""
    name = release if "alora-serve" in release else f"{release}-alora-serve"
    return name[:40].rstrip("-")


def _checked(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if found := validate.all_problems(objects):
        raise DeployError("refusing invalid objects:\n  " + "\n  ".join(found))
    return objects


def apply(cluster: Cluster, values: dict[str, Any], release: str, say: Say) -> str:
    """Render the chart for ``release``, check every object, create or update each;
    returns the chart's notes."""
    rendered = chart.render(values, chart.Release(release, cluster.namespace))
    for obj in _checked(chart.manifests(rendered)):
        outcome = cluster.apply(obj)
        say(f"{obj['kind']} {obj['metadata']['name']}: {outcome}")
    return chart.notes(rendered)


def fetch(cluster: Cluster, release: str) -> dict[str, Any]:
    return cluster.get(rayservice.API_VERSION, rayservice.KIND, rayservice_name(release))


def wait_ready(cluster: Cluster, release: str, timeout_s: int, say: Say) -> rayservice.Status:
    """Follow the RayService until KubeRay reports it ready, saying each new state."""
    name = rayservice_name(release)
    deadline = time.monotonic() + timeout_s
    last = ""
    while (left := int(deadline - time.monotonic())) > 0:
        for obj in cluster.watch(rayservice.API_VERSION, rayservice.KIND, name, left):
            current = rayservice.status(obj)
            line = describe(current)
            if line != last:
                say(line)
                last = line
            if current.ready:
                return current
    raise DeployError(f"RayService {name} not ready after {timeout_s} s; last: {last}")


def describe(current: rayservice.Status) -> str:
    ready, desired = (current.pods.get(k) for k in ("readyWorkerReplicas", "desiredWorkerReplicas"))
    counts = f", pods {ready}/{desired}" if None not in (ready, desired) else ""
    waiting = [d.name for d in current.deployments if d.status != "HEALTHY"]
    detail = f", waiting for {', '.join(waiting)}" if waiting and not current.ready else ""
    return f"{'ready' if current.ready else 'not ready'}: {current.state}{counts}{detail}"


def change_intrinsics(
    cluster: Cluster,
    release: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    say: Say,
) -> list[str]:
    """Patch the live RayService's serveConfigV2 with ``change`` applied to its topology;
    KubeRay redeploys the Serve application in place. Returns what is served after."""
    service = fetch(cluster, release)
    new_topology = change(rayservice.topology(service))
    patch = rayservice.serve_config_patch(service, new_topology)
    candidate = service | {"spec": service["spec"] | patch["spec"]}
    candidate.pop("status", None)
    _checked([_without_server_fields(candidate)])
    cluster.merge_patch(rayservice.API_VERSION, rayservice.KIND, service["metadata"]["name"], patch)
    served = rayservice.served(new_topology)
    say(f"RayService {service['metadata']['name']}: serveConfigV2 patched; serving {served}")
    return served


def _without_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        k: obj["metadata"][k] for k in ("name", "namespace", "labels") if k in obj["metadata"]
    }
    return obj | {"metadata": metadata}
