"""Render the Helm chart (helm/alora-serve) offline with Helm's own Go SDK."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alora_serve.deploy.errors import ChartError

CHART_DIR = Path(__file__).resolve().parents[3] / "helm" / "alora-serve"
EXAMPLES_DIR = CHART_DIR / "examples"
KUBE_VERSION = "1.33"  # the Kubernetes release rendered objects are checked against


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str = "default"


def load_values(path: Path | str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text()) or {}


def render(values: dict[str, Any], release: Release, chart: Path = CHART_DIR) -> dict[str, str]:
    """Template path -> rendered text, after values.schema.json and the chart's checks."""
    import helm_python as helm

    loaded = helm.Chart.load(chart)
    try:
        loaded.validate_schema(values)
        return loaded.render(values, name=release.name, namespace=release.namespace)
    except helm.HelmError as e:
        raise ChartError(str(e)) from None


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a render (NOTES.txt and empty templates dropped)."""
    objects = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def notes(rendered: dict[str, str]) -> str:
    return next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")


def lint(chart: Path = CHART_DIR, values: dict[str, Any] | None = None) -> list[str]:
    """helm lint's warnings and errors (its info lines, e.g. "icon is recommended", dropped)."""
    import helm_python as helm

    report = helm.lint(chart, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    found = [m for m in report["messages"] if m["severity"] >= 2]
    return [f"{m['path']}: {m['error']}" for m in found] + list(report["errors"])
