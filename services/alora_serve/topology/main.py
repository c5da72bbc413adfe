"""The main job: a topology on Ray Serve on this machine, checked end to end, serving
HTTP until interrupted."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from alora_serve.engine import ChatMessage, SamplingOptions
from alora_serve.gateway.config import GatewayConfig
from alora_serve.topology.config import TopologyConfig

APP_NAME = "alora"
STATS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Addresses:
    """Where the main job listens: HTTP on ``host``; Prometheus metrics (Ray's endpoint,
    every replica's series) on loopback. The gRPC gateway's address is in its config."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    metrics_port: int = 9464


def serve_topology(
    config: TopologyConfig, addresses: Addresses, progress: Callable[[str], None] = print
) -> None:
    from ray import serve

    from alora_serve.topology import local_ray
    from alora_serve.topology.app import build_app, resolve_library

    library = resolve_library(config, progress)
    app = build_app(config, library)  # validated before Ray starts anything
    progress("Starting Ray on this host (listening on loopback only) ...")
    with local_ray.running(_metrics_export_port=addresses.metrics_port) as ray_node:
        auth = "token authentication" if ray_node.token_auth else "NO token authentication"
        progress(f"Ray is up at {ray_node.address} ({auth}, no dashboard)")
        try:
            _serve_until_stopped(config, app, addresses, progress)
        finally:
            serve.shutdown()


def _serve_until_stopped(
    config: TopologyConfig, app, addresses: Addresses, progress: Callable[[str], None]
) -> None:
    from ray import serve

    serve.start(http_options={"host": addresses.host, "port": addresses.http_port})
    progress(f"Starting the {config.topology} topology (engines start together) ...")
    with _ReadinessReport(progress):
        ingress = serve.run(app, name=APP_NAME, route_prefix="/")
    _self_check(ingress, progress)
    grpc_target = None
    if config.gateway is not None:
        grpc_target = f"{config.gateway.host}:{config.gateway.port}"
        _grpc_self_check(config.gateway, progress)
    _print_banner(addresses, grpc_target, progress)
    _wait_for_signal()
    progress("Stopping ...")


class _ReadinessReport:
    """Says when each deployment is ready, and what its warm-up paid, while Serve starts
    them (a thread polls Serve's status)."""

    def __init__(self, progress: Callable[[str], None], interval_s: float = 2.0) -> None:
        self._progress = progress
        self._interval_s = interval_s
        self._ready: set[str] = set()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _ReadinessReport:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        if exc_info[0] is None:
            self._poll()  # those that became ready since the last look

    def _watch(self) -> None:
        while not self._stop.wait(self._interval_s):
            with contextlib.suppress(Exception):  # Serve is still starting: look again
                self._poll()

    def _poll(self) -> None:
        from ray import serve

        status = serve.status().applications.get(APP_NAME)
        for name, deployment in sorted(status.deployments.items() if status else ()):
            if name not in self._ready and deployment.status == "HEALTHY":
                self._ready.add(name)
                seconds = time.monotonic() - self._started
                self._progress(f"  {name} ready after {seconds:.0f} s{_warm_up_note(name)}")


def _warm_up_note(deployment: str) -> str:
    """What the deployment warmed up, and how long that took (an ingress has nothing)."""
    from ray import serve

    from alora_serve.topology.app import INGRESS

    if deployment == INGRESS:
        return ""
    handle = serve.get_deployment_handle(deployment, APP_NAME)
    try:
        warm_up = handle.stats.remote().result(timeout_s=STATS_TIMEOUT_S)["warm_up"]
    except Exception as exc:  # the note is a courtesy: it never holds up the start
        return f" (its warm-up report did not come: {type(exc).__name__})"
    return f"; warmed up {', '.join(warm_up['warmed'])} in {warm_up['seconds']:.1f} s"


def _self_check(ingress, progress: Callable[[str], None]) -> None:
    from alora_serve.examples.rag_pipeline import EXAMPLE_CONVERSATION, EXAMPLE_DOCUMENTS
    from alora_serve.intrinsics.call import IntrinsicRequest, IntrinsicsCall

    names = [info.name for info in ingress.catalog.remote().result()]
    request = IntrinsicRequest(messages=EXAMPLE_CONVERSATION, documents=EXAMPLE_DOCUMENTS)
    checked = [n for n in ("answerability", "uncertainty") if n in names] or names[:1]
    call = IntrinsicsCall(intrinsics=checked, request=request, tenant="self-check")
    for result in ingress.run_many.remote(call).result():
        progress(
            f"Self-check: {result.name} -> {json.dumps(result.result)} "
            f"({result.usage.reused_prompt_tokens}/{result.usage.prompt_tokens} prompt tokens "
            f"reused, {result.timings.total_s:.2f} s)"
        )
    question = [ChatMessage(role="user", content="What is the capital of France?")]
    reply = ingress.chat.remote(question, SamplingOptions(max_tokens=32), "self-check").result()
    progress(f"Self-check: chat -> {reply.text!r}")


def _grpc_self_check(gateway: GatewayConfig, progress: Callable[[str], None]) -> None:
    """One call through the public gRPC API, as a client makes it (no token: a gateway
    with tokens answers UNAUTHENTICATED, which proves it serves). Not with TLS or an
    ingress placed elsewhere: this process has no client certificate, nor the node."""
    from alora_serve.client import AloraClient, AloraError

    if gateway.tls is not None or gateway.resources:
        progress("Self-check: gRPC skipped (TLS or placed ingress: check with your client)")
        return
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(gateway.host, gateway.host)
    target = f"{host}:{gateway.port}"
    with AloraClient(target, timeout_s=60) as client:
        try:
            names = [info.name for info in client.list_intrinsics()]
            progress(f"Self-check: gRPC on {target} lists {', '.join(names)}")
        except AloraError as error:
            if error.reason != "INVALID_TOKEN":
                raise
            progress(f"Self-check: gRPC on {target} requires bearer tokens")


def _print_banner(
    addresses: Addresses, grpc_target: str | None, progress: Callable[[str], None]
) -> None:
    url = f"http://{addresses.host}:{addresses.http_port}"
    lines = [f"alora-serve listening on {url}"]
    if grpc_target:
        lines.append(
            f"  gRPC (alora.v1): {grpc_target}  (python -m alora_serve.examples.grpc_client)"
        )
    lines += [
        f"  intrinsics: curl {url}/v1/intrinsics",
        f"  chat:       alora-serve chat --url {url} 'Hello!'",
        f"  metrics:    http://127.0.0.1:{addresses.metrics_port}/metrics (Prometheus)",
        "Press Ctrl-C to stop.",
    ]
    progress("\n".join(lines))


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
