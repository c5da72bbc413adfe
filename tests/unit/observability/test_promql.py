"""metric_names finds the metrics a PromQL expression reads, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.observability.promql import (
    alerting_rules,
    is_recording_rule,
    metric_names,
    recording_rules,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ("rate(http_requests_total[5m])", {"http_requests_total"}),
        # aggregations, by-lists and functions are not metrics
        (
            "histogram_quantile(0.99, sum by (intrinsic, le) (rate(lat_bucket[5m])))",
            {"lat_bucket"},
        ),
        ("sum without (replica, le) (x) / count(y) by (role)", {"x", "y"}),
        ("SUM BY (a) (x)", {"x"}),
        ("sum by\n  (intrinsic)\n  (rate(x[1h:1m]))", {"x"}),
        # label names and values inside {...}, including quoted braces and operators
        ('x{intrinsic=~"a|b", code!="OK", q="}{ y"} > 0', {"x"}),
        ("x{job='sum(z)'}", {"x"}),
        # vector matching keywords and their label lists
        ("a / on (intrinsic) group_left (code, role) b", {"a", "b"}),
        ("a * ignoring(le) group_right b", {"a", "b"}),
        ("a and on() b unless c or d", {"a", "b", "c", "d"}),
        ("a == bool b", {"a", "b"}),
        # numbers, durations, offsets and @ modifiers
        ("a offset 1h30m > 1e+3 * 0x1F - .5 + Inf - NaN", {"a"}),
        ("a @ 1609746000 + b @ start() + c offset -5m", {"a", "b", "c"}),
        # string arguments are not metrics
        ('label_replace(x, "dst", "$1", "src", "(sum_of_y)")', {"x"}),
        ('count_values("version", build_info)', {"build_info"}),
        ("topk(5, x) + quantile(0.9, y) + `raw z`", {"x", "y"}),
        # recording rules are names like any other
        (
            "intrinsic:alora_prompt_tokens_reuse_ratio:rate5m < 0.5",
            {"intrinsic:alora_prompt_tokens_reuse_ratio:rate5m"},
        ),
        # the metric name as a matcher
        ('{__name__="x", job="a"} + {"y.dotted", a="b"}', {"x", "y.dotted"}),
        ('{__name__=~"x|y"}', set()),  # a pattern names no one metric
        # Grafana variables
        ('sum(rate(x{intrinsic=~"$intrinsic"}[$__rate_interval])) / ${denominator}', {"x"}),
        ("rate(x[$__range]) > $threshold", {"x"}),
        # comments
        ("x # and not_a_metric\n+ y", {"x", "y"}),
        ("vector(1) + scalar(time())", set()),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_recording_rules_resolve_to_raw_metrics_recursively() -> None:
    rules = {
        "a:x:rate5m": "sum by (a) (rate(x_total[5m]))",
        "a:x:ratio": "a:x:rate5m / (a:x:rate5m + a:y:rate5m > 0)",
        "a:y:rate5m": "sum by (a) (rate(y_total[5m])) or 0 * a:x:rate5m",
    }
    assert metric_names("a:x:ratio > 0.5 and z", rules) == {"x_total", "y_total", "z"}
    # A recording-rule name that no rule defines stays, so a check reports it.
    assert metric_names("a:missing:rate5m", rules) == {"a:missing:rate5m"}
    assert metric_names("a:x:ratio") == {"a:x:ratio"}  # without rules: as written


def test_rule_files_load(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n"
        "  - name: g\n"
        "    rules:\n"
        "      - record: job:x:rate5m\n"
        "        expr: sum by (job) (rate(x_total[5m]))\n"
        "      - alert: XHigh\n"
        "        expr: job:x:rate5m > 1\n"
    )
    assert recording_rules(path) == {"job:x:rate5m": "sum by (job) (rate(x_total[5m]))"}
    assert alerting_rules(path) == {"XHigh": "job:x:rate5m > 1"}
    assert is_recording_rule("job:x:rate5m")
    assert not is_recording_rule("x_total")
