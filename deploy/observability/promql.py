"""The metric names a PromQL expression reads, so dashboards and rules can be checked
against what the system exports without a Prometheus.

A small lexer, not a parser: it skips string literals, comments, label matchers
(``{...}``), range and subquery brackets (``[5m]``, ``[1h:1m]``), numbers and durations,
Grafana variables (``$__rate_interval``, ``${intrinsic}``), keywords and the label lists
of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``. An identifier
followed by ``(`` is a function or an aggregation; every other identifier is a metric
name. A ``__name__="..."`` matcher names a metric too.

Recording-rule names (``level:metric:operations``, they contain ``:``) are metric names
like any other; given the recording rules (``recording_rules(path)``), ``metric_names``
replaces each with the raw metrics its expression reads, recursively.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

# Aggregation operators, binary operators, modifiers and literals: never metric names.
KEYWORDS = frozenset(
    {
        # aggregations
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
        # set operators and modifiers
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
        "group_right", "bool", "offset", "atan2",
        # literals
        "inf", "nan",
    }
)  # fmt: skip
# Keywords whose parenthesized list holds label names, not expressions.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# {__name__="name"} (not __name__=~, a pattern) ...
_NAME_MATCHER = re.compile(
    r"""(?<![\w"'])__name__\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')"""
)
# ... and {"name", ...}: a quoted name standing alone among the matchers (UTF-8 syntax).
_QUOTED_NAME = re.compile(r"""[{,]\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*(?=[,}])""")
_CLOSING = {"{": "}", "[": "]", "(": ")"}


def _skip_string(expr: str, i: int) -> int:
    """The index just past the string literal that starts at ``expr[i]``."""
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _skip_group(expr: str, i: int) -> int:
    """The index just past the bracket group that opens at ``expr[i]`` (strings inside
    are skipped whole, so a quoted ``}`` does not close it)."""
    opening, closing = expr[i], _CLOSING[expr[i]]
    depth = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _skip_number(expr: str, i: int) -> int:
    """Past a number or a duration: ``5``, ``0.99``, ``1e-3``, ``0x1F``, ``1h30m``."""
    while i < len(expr) and (expr[i].isalnum() or expr[i] in "._"):
        if expr[i] in "eE" and i + 1 < len(expr) and expr[i + 1] in "+-":
            i += 1
        i += 1
    return i


def _next_paren(expr: str, i: int) -> int:
    """The index of the ``(`` that follows ``expr[i:]`` past whitespace, or -1."""
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i if expr[i : i + 1] == "(" else -1


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    """("ident", name) for each identifier that is not followed by ``(`` (so not a function
    or an aggregation) and is not in a label list; ("matchers", text) for each ``{...}``."""
    i = 0
    while i < len(expr):
        char = expr[i]
        if char.isspace():
            i += 1
        elif char == "#":
            end = expr.find("\n", i)
            i = len(expr) if end < 0 else end
        elif char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "{":
            end = _skip_group(expr, i)
            yield "matchers", expr[i:end]
            i = end
        elif char == "[":
            i = _skip_group(expr, i)
        elif char == "$":  # a Grafana variable: $name or ${name}
            i += 1
            if expr[i : i + 1] == "{":
                i = _skip_group(expr, i)
            elif match := _IDENT.match(expr, i):
                i = match.end()
        elif char.isdigit() or (char == "." and expr[i + 1 : i + 2].isdigit()):
            i = _skip_number(expr, i)
        elif match := _IDENT.match(expr, i):
            i = match.end()
            paren = _next_paren(expr, i)
            if match.group().lower() in LABEL_LISTS and paren >= 0:
                i = _skip_group(expr, paren)  # label names, not metrics
            elif paren < 0:
                yield "ident", match.group()
        else:
            i += 1


def _raw_names(expr: str) -> set[str]:
    names: set[str] = set()
    for kind, text in _tokens(expr):
        if kind == "matchers":
            for pattern in (_NAME_MATCHER, _QUOTED_NAME):
                names.update(a or b for a, b in pattern.findall(text))
        elif text.lower() not in KEYWORDS:
            names.add(text)
    return names


def is_recording_rule(name: str) -> bool:
    """Recording rules are named ``level:metric:operations``; exported metrics have no
    colon."""
    return ":" in name


def metric_names(expr: str, rules: Mapping[str, str] | None = None) -> set[str]:
    """The metric names ``expr`` reads. With ``rules`` (recording-rule name -> its
    expression), each recording rule's name is replaced by the raw metrics it reads,
    recursively; a recording-rule name that ``rules`` does not define stays in the
    result (so a check against the exported names reports it)."""
    names = _raw_names(expr)
    if rules is None:
        return names
    resolved: set[str] = set()
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in rules and is_recording_rule(name):
            if name not in seen:
                seen.add(name)
                pending.extend(_raw_names(rules[name]))
        else:
            resolved.add(name)
    return resolved


def load_rule_groups(path: str | Path) -> list[dict]:
    """The ``groups`` of a Prometheus rule file."""
    return yaml.safe_load(Path(path).read_text())["groups"]


def _rules(path: str | Path, kind: str) -> dict[str, str]:
    """Name -> expression of the rules of ``kind`` ("record" or "alert") in a rule file."""
    return {
        rule[kind]: rule["expr"]
        for group in load_rule_groups(path)
        for rule in group["rules"]
        if kind in rule
    }


def recording_rules(path: str | Path) -> dict[str, str]:
    """Recording-rule name -> expression, for every recording rule in a rule file."""
    return _rules(path, "record")


def alerting_rules(path: str | Path) -> dict[str, str]:
    """Alert name -> expression, for every alerting rule in a rule file."""
    return _rules(path, "alert")
