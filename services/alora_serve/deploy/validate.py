"""Check rendered Kubernetes objects the way an API server would, without one.

- built-in kinds: Kubernetes' own OpenAPI schemas (``kubernetes-validate``), strict;
- RayService: KubeRay's CRD schema (vendored in ``schemas/``), made strict: a field the CRD
  does not declare fails, as it would be pruned (silently dropped) by a real API server;
- its ``serveConfigV2``: Ray Serve's own schema, the application's import path importable,
  and its ``args`` parsed as the builder will (``ServeArgs``: a whole ``TopologyConfig``).
"""

from __future__ import annotations

import copy
import functools
import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alora_serve.deploy.chart import KUBE_VERSION

CRD_FILE = Path(__file__).with_name("schemas") / "ray.io_rayservices.yaml"
# Kinds from CRDs not vendored here: checked for their identity only (docs/deploy.md).
UNCHECKED_KINDS = {
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


def problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one object (empty: nothing found)."""
    kind = (obj.get("apiVersion"), obj.get("kind"))
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if kind == ("ray.io/v1", "RayService"):
        found = _crd_problems(obj) or serve_config_problems(obj["spec"]["serveConfigV2"])
    elif kind in UNCHECKED_KINDS:
        found = [] if obj.get("metadata", {}).get("name") else ["metadata.name is missing"]
    else:
        found = _builtin_problems(obj)
    return [f"{where}: {line}" for line in found]


def all_problems(objects: list[dict[str, Any]]) -> list[str]:
    return [line for obj in objects for line in problems(obj)]


def serve_config_problems(text: str) -> list[str]:
    from ray.serve.schema import ServeDeploySchema

    from alora_serve.topology.serve_app import ServeArgs

    try:
        config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as e:
        return [f"serveConfigV2: {e}"]
    found = []
    for app in config.applications:
        if not _importable(app.import_path):
            found.append(f"serveConfigV2 {app.name}: import_path {app.import_path} not found")
        try:
            ServeArgs.model_validate(app.args)
        except ValidationError as e:
            found.append(f"serveConfigV2 {app.name}: args: {e}")
    return found


def _importable(import_path: str) -> bool:
    module, _, attribute = import_path.partition(":")
    try:
        return callable(getattr(importlib.import_module(module), attribute, None))
    except ImportError:
        return False


def _builtin_problems(obj: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(object)"
        return [f"{path}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    return []


def _crd_problems(obj: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(_rayservice_schema())
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(object)'}: {e.message}" for e in errors]


@functools.cache
def _rayservice_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # apiVersion, kind and metadata are the API server's, not the CRD's, to check
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def _strict(node: Any) -> Any:
    """Objects with declared properties accept no others (as the API server prunes them)."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node
