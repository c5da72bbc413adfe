"""Grafana building blocks as plain dicts: PromQL query helpers and the time series panel.

A query helper returns (PromQL, legend): the legend names the labels it sums by, and a
query by ``intrinsic`` follows the dashboard's ``intrinsic`` variable.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
INTRINSIC = 'intrinsic=~"$intrinsic"'
Query = tuple[str, str]  # (PromQL, legend)


def _selected(metric: str, by: str) -> str:
    labels = [label.strip() for label in by.split(",")]
    return f"{metric}{{{INTRINSIC}}}" if "intrinsic" in labels else metric


def _legend(by: str, prefix: str) -> str:
    labels = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return f"{prefix} {labels}".strip()


def rate_expr(metric: str, by: str) -> str:
    """Per-second rate of a counter, summed by ``by`` (comma-separated labels)."""
    return f"sum by ({by}) (rate({_selected(metric, by)}[{RATE}]))"


def rate(metric: str, by: str, prefix: str = "") -> Query:
    return rate_expr(metric, by), _legend(by, prefix)


def gauge(metric: str, by: str, prefix: str = "", how: str = "sum") -> Query:
    return f"{how} by ({by}) ({_selected(metric, by)})", _legend(by, prefix)


def quantile(q: float, histogram: str, by: str, prefix: str = "") -> Query:
    """The ``q`` quantile of a histogram (its ``_bucket`` series), per ``by``."""
    expr = f"histogram_quantile({q}, {rate_expr(f'{histogram}_bucket', f'{by}, le')})"
    return expr, _legend(by, prefix)


def ratio(numerator: str, denominator: str, by: str) -> Query:
    """A ratio of two counters' rates, with no sample (not NaN) while nothing is counted."""
    expr = f"{rate_expr(numerator, by)} / ({rate_expr(denominator, by)} > 0)"
    return expr, _legend(by, "")


def recorded(rule: str, by: str, prefix: str = "") -> Query:
    """A recording rule of rules.yml."""
    return _selected(rule, by), _legend(by, prefix)


def panel(title: str, unit: str, description: str, *queries: Query, **options: Any) -> dict:
    """A time series panel; ``stack=True`` stacks its series, ``max`` bounds the axis."""
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 30 if options.get("stack") else 10,
        "showPoints": "never",
        "stacking": {"mode": "normal" if options.get("stack") else "none", "group": "A"},
    }
    defaults = {"unit": unit, "min": 0, "custom": custom}
    if "max" in options:
        defaults["max"] = options["max"]
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(65 + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
    }
