"""``alora-serve deploy ...``: the argument parser and what each command prints."""

from __future__ import annotations

import argparse
import functools
from typing import Any

DEFAULT_RELEASE = "alora"
DEFAULT_TIMEOUT_S = 1800


def add_commands(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="install and operate the RayService (Kubernetes)")
    actions = deploy.add_subparsers(required=True, metavar="ACTION")
    apply = _action(actions, "apply", "install or upgrade from values (helm/alora-serve)")
    apply.add_argument("--values", "-f", action="append", default=[], help="values file(s)")
    apply.add_argument("--wait", action="store_true", help="then wait until it serves")
    apply.set_defaults(run=_apply)
    status = _action(actions, "status", "deployments, replicas, autoscaling targets")
    status.add_argument("--wait", action="store_true", help="wait until it serves")
    status.set_defaults(run=_status)
    add = _action(actions, "add-intrinsic", "serve one more intrinsic (patches serveConfigV2)")
    add.add_argument("name")
    add.add_argument("--group", help="decode group to add it to (default: a new one)")
    add.set_defaults(run=_add)
    remove = _action(actions, "remove-intrinsic", "stop serving an intrinsic")
    remove.add_argument("name")
    remove.set_defaults(run=_remove)


def _action(actions: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text)
    parser.add_argument("--release", default=DEFAULT_RELEASE)
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds to wait")
    return parser


def _cluster(args: argparse.Namespace) -> Any:
    from alora_serve.deploy.cluster import Cluster

    return Cluster.connect(args.namespace, args.context)


def _say(line: str) -> None:
    print(line, flush=True)


def _merged_values(paths: list[str]) -> dict[str, Any]:
    from alora_serve.deploy.chart import load_values

    return functools.reduce(_deep_merge, (load_values(p) for p in paths), {})


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _deep_merge(base[key], value) if both_dicts else value
    return merged


def _apply(args: argparse.Namespace) -> int:
    from alora_serve.deploy import tool

    cluster = _cluster(args)
    notes = tool.apply(cluster, _merged_values(args.values), args.release, _say)
    if args.wait:
        tool.wait_ready(cluster, args.release, args.timeout, _say)
    _say(notes)
    return 0


def _status(args: argparse.Namespace) -> int:
    from alora_serve.deploy import rayservice, tool

    cluster = _cluster(args)
    if args.wait:
        tool.wait_ready(cluster, args.release, args.timeout, _say)
    current = rayservice.status(tool.fetch(cluster, args.release))
    _say(tool.describe(current))
    for d in current.deployments:
        served = f" [{', '.join(d.intrinsics)}]" if d.intrinsics else ""
        _say(f"  {d.name}{served}: {d.status}, replicas {d.replicas}")
    return 0 if current.ready else 3


def _add(args: argparse.Namespace) -> int:
    from alora_serve.deploy import rayservice, tool

    change = functools.partial(rayservice.with_intrinsic, name=args.name, group=args.group)
    tool.change_intrinsics(_cluster(args), args.release, change, _say)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from alora_serve.deploy import rayservice, tool

    change = functools.partial(rayservice.without_intrinsic, name=args.name)
    tool.change_intrinsics(_cluster(args), args.release, change, _say)
    return 0
