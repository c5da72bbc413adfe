"""The Grafana dashboard, built from code: plain dicts, written as JSON for import.

Regenerate the committed JSON after changing a panel (from the repository root):

    python -m deploy.observability.dashboard

Every panel reads the Prometheus data source picked in the ``datasource`` variable, and the
intrinsic panels follow the ``intrinsic`` variable. ``panel_queries()`` lists every
panel's PromQL, for tests and for renderers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deploy.observability.grafana import DATASOURCE
from deploy.observability.panels import SECTIONS

OUTPUT = Path(__file__).with_name("grafana-dashboard.json")
REGENERATE = "python -m deploy.observability.dashboard"
PANEL_WIDTH, PANEL_HEIGHT = 12, 8


def _templating() -> dict[str, Any]:
    intrinsics = "label_values(ray_alora_intrinsic_requests_total, intrinsic)"
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
            },
            {
                "name": "intrinsic",
                "label": "Intrinsic",
                "type": "query",
                "datasource": DATASOURCE,
                "definition": intrinsics,
                "query": {"query": intrinsics, "refId": "intrinsics"},
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "includeAll": True,
                "allValue": ".*",
                "multi": True,
                "hide": 0,
                "refresh": 2,
                "regex": "",
                "sort": 1,
            },
        ]
    }


def build() -> dict[str, Any]:
    """The dashboard: a row per section, two panels side by side under it."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, make in SECTIONS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        section = make()
        for i, each in enumerate(section):
            each["gridPos"] = {
                "h": PANEL_HEIGHT,
                "w": PANEL_WIDTH,
                "x": i % 2 * PANEL_WIDTH,
                "y": y,
            }
            panels.append(each)
            y += PANEL_HEIGHT if i % 2 else 0
        y += PANEL_HEIGHT if len(section) % 2 else 0
    for panel_id, each in enumerate(panels, start=1):
        each["id"] = panel_id
    return {
        "uid": "alora-serve",
        "title": "alora-serve",
        "description": "aLoRA intrinsics on vLLM + Ray Serve (docs/observability.md)",
        "tags": ["alora-serve", "vllm", "ray-serve"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "templating": _templating(),
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def panel_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, in dashboard order."""
    dashboard = build() if dashboard is None else dashboard
    return [
        (each["title"], target["expr"])
        for each in dashboard["panels"]
        for target in each.get("targets", [])
    ]


def render() -> str:
    """The dashboard as the committed JSON file's text."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the JSON")
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is up to date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
