"""Prometheus rules, the Grafana dashboard and the PromQL checks behind them
(docs/observability.md)."""
