"""A release's objects through the Kubernetes API server (the ``kubernetes`` client's
dynamic client, so built-in kinds and KubeRay's CRD go through one path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from alora_serve.deploy.errors import DeployError

MERGE_PATCH = "application/merge-patch+json"


def api_error(e: DynamicApiError, action: str) -> DeployError:
    """The API server's own message (its Status body), not the client's HTTP dump."""
    try:
        message = json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError):
        message = e.reason
    return DeployError(f"{action}: the API server answered {e.status} {e.reason}: {message}")


class Cluster:
    """One namespace of one cluster."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._dynamic = dynamic.DynamicClient(api)
        self.namespace = namespace

    @classmethod
    def connect(cls, namespace: str, context: str | None = None) -> Cluster:
        """From the kubeconfig (``context`` or its current one), else the pod's service
        account."""
        try:
            api = config.new_client_from_config(context=context)
        except config.ConfigException as from_file:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise DeployError(
                    f"no cluster to talk to: {from_file}; point KUBECONFIG at a kubeconfig "
                    "(or pass --context), or run inside a pod with a service account"
                ) from None
            api = client.ApiClient()
        return cls(api, namespace)

    def _resource(self, obj: dict[str, Any]) -> Any:
        try:
            return self._dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except dynamic.exceptions.ResourceNotFoundError:
            raise DeployError(
                f"the cluster does not serve {obj['apiVersion']} {obj['kind']}: install the "
                "operator that defines it (KubeRay for RayService, docs/deploy.md) or turn "
                "that object off in the values"
            ) from None

    def apply(self, obj: dict[str, Any]) -> str:
        """Create the object, or merge-patch it if it exists; 'created' or 'updated'."""
        resource = self._resource(obj)
        obj = obj | {"metadata": obj["metadata"] | {"namespace": self.namespace}}
        name = obj["metadata"]["name"]
        where = f"{obj['kind']} {self.namespace}/{name}"
        try:
            resource.create(body=obj, namespace=self.namespace)
            return "created"
        except DynamicApiError as e:
            if e.status != 409:
                raise api_error(e, f"creating {where}") from None
        try:
            resource.patch(body=obj, name=name, namespace=self.namespace, content_type=MERGE_PATCH)
        except DynamicApiError as e:
            raise api_error(e, f"updating {where}") from None
        return "updated"

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any]:
        resource = self._resource({"apiVersion": api_version, "kind": kind})
        try:
            return resource.get(name=name, namespace=self.namespace).to_dict()
        except NotFoundError:
            raise DeployError(
                f"no {kind} {name!r} in namespace {self.namespace!r}: install it first "
                "(alora-serve deploy apply), or check --release and --namespace"
            ) from None
        except DynamicApiError as e:
            raise api_error(e, f"reading {kind} {self.namespace}/{name}") from None

    def merge_patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any]) -> None:
        resource = self._resource({"apiVersion": api_version, "kind": kind})
        try:
            resource.patch(
                body=patch, name=name, namespace=self.namespace, content_type=MERGE_PATCH
            )
        except DynamicApiError as e:
            raise api_error(e, f"patching {kind} {self.namespace}/{name}") from None

    def watch(self, api_version: str, kind: str, name: str, timeout_s: int) -> Iterator[dict]:
        """The object each time it changes, for up to ``timeout_s`` seconds."""
        resource = self._resource({"apiVersion": api_version, "kind": kind})
        events = self._dynamic.watch(
            resource, namespace=self.namespace, name=name, timeout=timeout_s
        )
        try:
            for event in events:
                yield event["raw_object"]
        except DynamicApiError as e:
            raise api_error(e, f"watching {kind} {self.namespace}/{name}") from None
