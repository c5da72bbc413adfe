"""The `alora-serve` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from alora_serve.deploy import cli as deploy_cli
from alora_serve.deploy.errors import DeployError
from alora_serve.loadtest import METRICS_URL, MTRAG_REFERENCE
from alora_serve.loadtest.profiles import ProfileName
from alora_serve.model import ModelError
from alora_serve.training import cli as training_cli
from alora_serve.training.examples import TrainingInputError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ModelError, ValidationError, DeployError, TrainingInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alora-serve", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare-model", help="convert the embedded default model once")
    prepare.add_argument("--force", action="store_true", help="rebuild even if a copy exists")
    prepare.add_argument(
        "--stand-ins",
        action="store_true",
        help="also make the seeded stand-in adapters (what a topology without a library serves)",
    )
    prepare.set_defaults(run=_prepare_model)

    deploy_cli.add_commands(commands)
    training_cli.add_commands(commands)

    serve = commands.add_parser(
        "serve", help="run the main job: a serving topology on Ray Serve, until interrupted"
    )
    serve.add_argument(
        "--topology",
        choices=["disaggregated", "colocated"],
        default=None,
        help="override the config's topology (embedded default: disaggregated)",
    )
    serve.add_argument("--config", default=None, help="topology YAML (default: embedded)")
    serve.add_argument("--model", default=None, help="HF checkpoint dir (default: embedded)")
    serve.add_argument("--library", default=None, help="intrinsics adapter library")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP host")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port")
    serve.add_argument(
        "--metrics-port", type=int, default=9464, help="Prometheus metrics port (loopback)"
    )
    serve.add_argument("--grpc-host", default=None, help="gRPC host (default: config)")
    serve.add_argument(
        "--grpc-port", type=int, default=None, help="gRPC port (default: the config's)"
    )
    serve.add_argument(
        "--verbose", action="store_true", help="print every log line here (default: to a file)"
    )
    serve.set_defaults(run=_serve)

    pipeline = commands.add_parser(
        "example-pipeline",
        help="run the RAG intrinsics pipeline (docs/intrinsics.md) on the embedded model",
    )
    pipeline.add_argument(
        "--library",
        default=None,
        help="adapter library with the pipeline's intrinsics (default: the embedded library, "
        "trained adapters where the package ships them, seeded stand-ins made once in the "
        "cache for the rest)",
    )
    pipeline.set_defaults(run=_example_pipeline)

    chat = commands.add_parser("chat", help="send one chat message to a running server")
    chat.add_argument("message")
    chat.add_argument("--url", default="http://127.0.0.1:8000")
    chat.add_argument("--max-tokens", type=int, help="default: the server's")
    chat.set_defaults(run=_chat)

    load = commands.add_parser(
        "loadtest",
        help="a bounded Locust load test against a running server on this host (gRPC)",
    )
    load.add_argument("--target", default="127.0.0.1:50051", help="gRPC host:port (loopback)")
    load.add_argument("--profile", choices=typing.get_args(ProfileName), default="smoke")
    load.add_argument(
        "--users", type=_positive, help="scale the profile's stages to this many users"
    )
    load.add_argument(
        "--run-time", type=_positive, help="scale the profile's stages to these seconds"
    )
    load.add_argument(
        "--capacity",
        type=float,
        help="intrinsic calls a second the capacity profile measured (overload and soak "
        "offer a share of it)",
    )
    load.add_argument(
        "--metrics-url",
        default=METRICS_URL,
        help="the server's Prometheus endpoint, sampled during the run (loopback)",
    )
    load.add_argument("--out", default=None, help="report folder (default: in the cache)")
    load.add_argument(
        "--mtrag",
        default=MTRAG_REFERENCE,
        help="MTRAG conversations (JSONL) to replay",
    )
    load.add_argument("--token", default="", help="bearer token, if the server requires one")
    load.add_argument("--tls-ca", default="", help="PEM of the server's CA, for TLS")
    load.add_argument(
        "--verify-composed",
        action="store_true",
        help="check each composed call against the same intrinsics called alone",
    )
    load.set_defaults(run=_loadtest)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _prepare_model(args: argparse.Namespace) -> int:
    from alora_serve.model import prepare_embedded

    prepare_embedded(force=args.force, progress=_print_now)
    if args.stand_ins:
        from alora_serve.topology.app import resolve_library
        from alora_serve.topology.config import TopologyConfig

        resolve_library(TopologyConfig(), _print_now)
    return 0


def _print_now(line: str) -> None:
    print(line, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from alora_serve.console import main_job_console
    from alora_serve.topology.local_ray import keep_log_records_whole

    keep_log_records_whole()  # before anything imports Ray
    with main_job_console(args.verbose) as say:  # first: importing vLLM already prints
        _run_main_job(args, say)
    return 0


def _run_main_job(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    from alora_serve.topology.config import load_topology
    from alora_serve.topology.main import Addresses, serve_topology

    config = load_topology(
        args.config, topology=args.topology, model=args.model, library=args.library
    ).with_gateway_address(args.grpc_host, args.grpc_port)
    serve_topology(config, Addresses(args.host, args.port, args.metrics_port), progress=say)


def _example_pipeline(args: argparse.Namespace) -> int:
    from alora_serve.examples.rag_pipeline import run_example

    result = asyncio.run(run_example(args.library, progress=lambda line: print(line, flush=True)))
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    import time

    from alora_serve.loadtest.profiles import PROFILES
    from alora_serve.loadtest.runner import LoadRun, failure, require_loopback, run
    from alora_serve.paths import cache_root

    require_loopback(args.target)
    profile = PROFILES[args.profile]
    if args.users is not None:
        profile = profile.with_users(args.users)
    if args.run_time is not None:
        profile = profile.with_run_time(args.run_time)
    out = Path(args.out or cache_root() / "loadtests" / time.strftime("%Y%m%d-%H%M%S"))
    load = LoadRun(
        *(args.target, profile, out, Path(args.mtrag), args.token, args.tls_ca),
        verify_composed=args.verify_composed,
        metrics_url=args.metrics_url,
        capacity_per_s=args.capacity,
    )
    summary = run(load)
    shown = ("calls", "per_s", "errors_by_code", "goodput", "capacity")
    print(json.dumps({k: summary[k] for k in shown}))
    print(f"Reports in {out}")
    if (failed := failure(summary)) is not None:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    unexpected = set(summary["errors_by_code"]) - set(profile.tolerated_codes)
    return 1 if unexpected else 0


def _chat(args: argparse.Namespace) -> int:
    import httpx

    response = httpx.post(
        f"{args.url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": args.message}],
            **({"max_tokens": args.max_tokens} if args.max_tokens is not None else {}),
        },
        timeout=300,
    )
    if response.is_error:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(response.json()["choices"][0]["message"]["content"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
