"""Reading and changing a rendered or live RayService: its topology (the Serve
application's ``args``), adding or removing an intrinsic, and what its status says."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

from alora_serve.deploy.errors import DeployError

API_VERSION = "ray.io/v1"
KIND = "RayService"


def _config(service: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def topology(service: dict[str, Any]) -> dict[str, Any]:
    """The TopologyConfig (as data) the Serve application is built from."""
    (app,) = _config(service)["applications"]
    return app["args"]["topology"]


def serve_config_patch(service: dict[str, Any], new_topology: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that gives ``service`` this topology (nothing else changes)."""
    config = _config(service)
    config["applications"][0]["args"]["topology"] = new_topology
    return {"spec": {"serveConfigV2": yaml.safe_dump(config, sort_keys=False)}}


def served(topo: dict[str, Any]) -> list[str]:
    if topo.get("topology") == "colocated":
        return list(topo.get("intrinsics", []))
    return [name for group in topo.get("decode", []) for name in group["intrinsics"]]


def with_intrinsic(topo: dict[str, Any], name: str, group: str | None) -> dict[str, Any]:
    """``name`` served too: in decode group ``group`` (multi-LoRA from then on), or in a new
    merged group of its own placed like the first group."""
    if name in served(topo):
        raise DeployError(f"intrinsic {name!r} is served already")
    changed = copy.deepcopy(topo)
    if changed.get("intrinsics") or changed.get("topology") == "colocated":
        changed.setdefault("intrinsics", []).append(name)
    if changed.get("topology") == "colocated":
        return changed
    groups = changed["decode"]
    existing = next((g for g in groups if g["name"] == group), None)
    if existing is not None:
        existing["intrinsics"].append(name)
        existing["mode"] = "lora"
        return changed
    like = groups[0]
    new = {"name": group or name.replace("_", "-"), "intrinsics": [name]}
    new |= {key: copy.deepcopy(like[key]) for key in ("engine", "scaling") if key in like}
    groups.append(new)
    return changed


def without_intrinsic(topo: dict[str, Any], name: str) -> dict[str, Any]:
    """``name`` no longer served; a decode group left empty goes too."""
    if name not in served(topo):
        raise DeployError(f"intrinsic {name!r} is not served (served: {served(topo)})")
    changed = copy.deepcopy(topo)
    if name in changed.get("intrinsics", []):
        changed["intrinsics"].remove(name)
    if changed.get("topology") != "colocated":
        for group in changed["decode"]:
            if name in group["intrinsics"]:
                group["intrinsics"].remove(name)
        changed["decode"] = [g for g in changed["decode"] if g["intrinsics"]]
        if not changed["decode"]:
            raise DeployError(f"removing {name!r} would leave no decode deployment")
    return changed


@dataclass(frozen=True)
class Deployment:
    name: str
    intrinsics: list[str]
    status: str
    replicas: str  # configured: "2", or "1..4 (target 4 in flight per replica)"


@dataclass(frozen=True)
class Status:
    ready: bool
    state: str
    message: str
    deployments: list[Deployment] = field(default_factory=list)
    pods: dict[str, int] = field(default_factory=dict)


def status(service: dict[str, Any]) -> Status:
    """What KubeRay reports of the service, next to what its topology configures."""
    observed = service.get("status") or {}
    active = observed.get("activeServiceStatus") or {}
    apps = active.get("applicationStatuses") or {}
    app = next(iter(apps.values()), {})
    live = app.get("serveDeploymentStatuses") or {}
    ready_condition = next(
        (c for c in observed.get("conditions", []) if c.get("type") == "Ready"), None
    )
    ready = (ready_condition or {}).get("status") == "True" or observed.get(
        "serviceStatus"
    ) == "Running"
    state = app.get("status") or observed.get("serviceStatus") or "Pending"
    message = (ready_condition or {}).get("message") or app.get("message") or ""
    deployments = [
        Deployment(name, intrinsics, (live.get(name) or {}).get("status", "-"), replicas)
        for name, intrinsics, replicas in _configured(topology(service))
    ]
    cluster = active.get("rayClusterStatus") or {}
    pods = {
        key: int(cluster[key])
        for key in ("readyWorkerReplicas", "desiredWorkerReplicas", "maxWorkerReplicas")
        if key in cluster
    }
    return Status(ready, state, message, deployments, pods)


def _configured(topo: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    if topo.get("topology") == "colocated":
        return [("colocated", served(topo), _replicas(topo.get("colocated_scaling", {})))]
    prefill = ("prefill", [], _replicas(topo.get("prefill", {}).get("scaling", {})))
    return [prefill] + [
        (f"decode-{g['name']}", g["intrinsics"], _replicas(g.get("scaling", {})))
        for g in topo.get("decode", [])
    ]


def _replicas(scaling: dict[str, Any]) -> str:
    auto = scaling.get("autoscaling")
    if not auto:
        return str(scaling.get("num_replicas", 1))
    target = auto.get("target_ongoing_requests")
    span = f"{auto.get('min_replicas', 1)}..{auto.get('max_replicas', 1)}"
    return f"{span} (target {target} in flight per replica)" if target else span
