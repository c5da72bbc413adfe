"""The committed Grafana dashboard is what dashboard.py builds, every panel is complete,
and every metric the dashboard and the rules read is one the system exports (or a
recording rule of rules.yml over exported metrics)."""

from __future__ import annotations

import json
import re

import pytest

from alora_serve.observability.catalog import EXPORTED
from deploy.observability import dashboard
from deploy.observability.promql import (
    alerting_rules,
    is_recording_rule,
    metric_names,
    recording_rules,
)

RULES_FILE = dashboard.OUTPUT.with_name("rules.yml")
RULES = recording_rules(RULES_FILE)
BUILT = dashboard.build()


def unknown_metrics(expr: str) -> set[str]:
    """The metrics ``expr`` reads (recording rules resolved through rules.yml) that the
    system does not export."""
    return metric_names(expr, RULES) - EXPORTED


def test_committed_json_is_what_dashboard_py_builds() -> None:
    committed = dashboard.OUTPUT.read_text()
    assert committed == dashboard.render(), (
        f"{dashboard.OUTPUT.name} is out of date; regenerate it from the repository root "
        f"with: {dashboard.REGENERATE}"
    )
    assert json.loads(committed) == BUILT


def test_every_panel_has_a_title_a_datasource_and_queries() -> None:
    panels = [p for p in BUILT["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["title"], panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} has an empty query"
            assert target["datasource"] == panel["datasource"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
    ids = [p["id"] for p in BUILT["panels"]]
    assert len(set(ids)) == len(ids)


def test_the_dashboard_has_its_variables() -> None:
    variables = {v["name"]: v for v in BUILT["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    intrinsic = variables["intrinsic"]
    [metric] = re.findall(r"label_values\((\w+),\s*intrinsic\)", intrinsic["definition"])
    assert metric in EXPORTED


@pytest.mark.parametrize(
    ("title", "expr"), dashboard.panel_queries(BUILT), ids=lambda value: value[:60]
)
def test_panel_queries_read_exported_metrics(title: str, expr: str) -> None:
    assert metric_names(expr), f"panel {title!r}: no metric in {expr!r}"
    unknown = unknown_metrics(expr)
    assert not unknown, f"panel {title!r} reads metrics nobody exports: {sorted(unknown)}"


def test_the_reuse_panel_reads_the_recording_rule() -> None:
    exprs = [expr for title, expr in dashboard.panel_queries(BUILT) if title == "aLoRA reuse ratio"]
    assert any("intrinsic:alora_prompt_tokens_reuse_ratio:rate5m" in expr for expr in exprs)


@pytest.mark.parametrize(
    ("name", "expr"),
    sorted({**RULES, **alerting_rules(RULES_FILE)}.items()),
    ids=lambda value: value[:60],
)
def test_rules_read_exported_metrics_or_earlier_rules(name: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{name}: no metric in {expr!r}"
    undefined = {n for n in names if is_recording_rule(n) and n not in RULES}
    assert not undefined, f"{name} reads recording rules rules.yml does not define: {undefined}"
    unknown = {n for n in names if not is_recording_rule(n)} - EXPORTED
    assert not unknown, f"{name} reads metrics nobody exports: {sorted(unknown)}"


def test_a_misspelled_metric_is_reported() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (intrinsic, le) "
        '(rate(ray_alora_intrinsic_latncy_seconds_bucket{intrinsic=~"$intrinsic"}'
        "[$__rate_interval]))) / on (intrinsic) intrinsic:alora_prompt_tokens_reuse_ratio:rate5m"
    )
    assert unknown_metrics(expr) == {"ray_alora_intrinsic_latncy_seconds_bucket"}
    assert unknown_metrics("intrinsic:alora_no_such_rule:rate5m") == {
        "intrinsic:alora_no_such_rule:rate5m"
    }
