"""What the gRPC gateway and routing add to an intrinsic call.

The same call (answerability on a 2k-token conversation whose base KV is kept, as after
the base model's turn) three ways, interleaved round by round in one run:

- ``engine``: straight on the engine API, in this process (``IntrinsicRunner.run_many``);
- ``serve handle``: through the colocated topology's ingress by a Ray Serve handle
  (ingress -> worker: the routing hop, no gRPC);
- ``gRPC``: through the public API with the SDK (client -> gateway in the ingress ->
  worker).

Both engines have the same configuration and adapter. Each timed call is the first
intrinsic call on its own fresh conversation (a unique tag at its start) right after that
conversation was prefilled where the call runs; the paths go in a shuffled order each
round.

Two figures per path: latency at the caller (p50/p99), and what the path adds around the
engine work of the same call (the caller's time minus the time the call spent in the
engine's intrinsic runner, which every path reports). The second is free of the
engine-to-engine difference, which here is larger than what the gateway adds; the bar
(gRPC adds at most 5% of the engine's p50) is judged on it.

    python -m bench.gateway_overhead [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from alora_serve.client import AloraClient
from alora_serve.engine import Engine, EngineConfig
from alora_serve.engine.types import DEFAULT_TENANT
from alora_serve.gateway.config import GatewayConfig
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.topology import local_ray
from alora_serve.topology.app import build_app
from alora_serve.topology.config import TopologyConfig
from bench.intrinsics_composition import fresh
from bench.report import write_report
from tests.support.conversations import client_inputs, rag_request
from tests.support.network import free_port

CONVERSATION_TOKENS = 2048
INTRINSIC = "answerability"
TENANT = DEFAULT_TENANT  # the gateway runs without tokens: every call is this tenant
ENGINE = EngineConfig(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.5)
PATHS = ("engine", "serve handle", "gRPC")
WARMUP_ROUNDS = 2
BAR = 0.05  # p50 overhead of gRPC over the engine API, as a fraction of the engine's p50


class Paths:
    """The three ways to make the same call."""

    def __init__(self, runner: IntrinsicRunner, ingress, client: AloraClient, loop) -> None:
        self._runner, self._ingress, self._client, self._loop = runner, ingress, client, loop

    def prefill(self, path: str, request) -> None:
        """Keep the conversation's base KV where ``path``'s call will run."""
        call = IntrinsicsCall(intrinsics=[INTRINSIC], request=request, tenant=TENANT)
        if path == "engine":
            self._on_loop(self._runner.prefill(call))
        else:
            self._ingress.prefill.remote(call).result()

    def timed(self, path: str, request) -> tuple[float, float]:
        """(seconds at the caller, seconds in the engine's runner) of one call."""
        call = IntrinsicsCall(intrinsics=[INTRINSIC], request=request, tenant=TENANT)
        started = time.perf_counter()
        if path == "engine":
            (result,) = self._on_loop(self._runner.run_many(call))
            inside = result.timings.worker_s
        elif path == "serve handle":
            (result,) = self._ingress.run_many.remote(call).result()
            inside = result.timings.worker_s
        else:
            result = self._client.run_intrinsic(INTRINSIC, *client_inputs(request))
            inside = result.timings.worker.ToNanoseconds() / 1e9
        return time.perf_counter() - started, inside

    def _on_loop(self, coroutine):
        return self._loop.run_until_complete(coroutine)


def measure(paths: Paths, request, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Every timed call is the first intrinsic call on its own fresh conversation, right
    after that conversation's prefill: no path gains or loses from going first."""
    times: dict[str, list[tuple[float, float]]] = {p: [] for p in PATHS}
    shuffled = random.Random(0)
    for round_ in range(-WARMUP_ROUNDS, rounds):
        order = list(PATHS)
        shuffled.shuffle(order)
        for path in order:
            conversation = fresh(request, f"{path} {round_}")
            paths.prefill(path, conversation)
            timed = paths.timed(path, conversation)
            if round_ >= 0:
                times[path].append(timed)
        if round_ >= 0:
            print(
                f"  round {round_ + 1}/{rounds}: "
                + ", ".join(f"{p}: {times[p][-1][0] * 1000:.0f} ms" for p in PATHS),
                flush=True,
            )
    return times


def summary(timed: list[tuple[float, float]]) -> dict:
    """Latency at the caller, and what the path added on top of the engine work of the
    same call (caller's time minus the time in the engine's runner)."""
    samples = [outside for outside, _ in timed]
    added = [outside - inside for outside, inside in timed]
    return {
        "p50_s": statistics.median(samples),
        "p99_s": _p99(samples),
        "added_p50_ms": statistics.median(added) * 1000,
        "added_p99_ms": _p99(added) * 1000,
        "all_s": samples,
    }


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def main(rounds: int) -> None:
    from ray import serve
    from transformers import AutoTokenizer

    checkpoint = resolve_model(None)
    request = rag_request(AutoTokenizer.from_pretrained(checkpoint.path), CONVERSATION_TOKENS)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        print("Creating the seeded adapter with PEFT ...", flush=True)
        library = make_library(checkpoint, Path(tmp), [INTRINSIC])
        catalog = Catalog.from_library(library, checkpoint.name)
        print("Starting the in-process engine ...", flush=True)
        engine = loop.run_until_complete(Engine.start(ENGINE, catalog.adapters()))
        port = free_port()
        config = TopologyConfig(
            topology="colocated",
            intrinsics=[INTRINSIC],
            colocated=ENGINE,
            gateway=GatewayConfig(port=port),
        )
        try:
            with local_ray.running():
                print("Starting the colocated topology with its gRPC gateway ...", flush=True)
                ingress = serve.run(build_app(config, library), name="bench", route_prefix=None)
                with AloraClient(f"127.0.0.1:{port}") as client:
                    paths = Paths(IntrinsicRunner(engine, catalog), ingress, client, loop)
                    times = measure(paths, request, rounds)
                serve.shutdown()
        finally:
            engine.close()
    results = {path: summary(samples) for path, samples in times.items()}
    engine_p50 = results["engine"]["p50_s"]
    overhead = {
        path: {
            "p50_ms": (results[path]["p50_s"] - engine_p50) * 1000,
            "p99_ms": (results[path]["p99_s"] - results["engine"]["p99_s"]) * 1000,
        }
        for path in PATHS[1:]
    }
    # Two engines differ by more than the gateway adds, so the bar uses the same-call
    # figure: what the path adds around the engine work of that very call.
    added = results["gRPC"]["added_p50_ms"] - results["engine"]["added_p50_ms"]
    grpc_fraction = added / 1000 / engine_p50
    write_report(
        "gateway_overhead",
        {
            "conversation_tokens": CONVERSATION_TOKENS,
            "rounds": rounds,
            "paths": results,
            "overhead": overhead,
            "bars": {
                "grpc_p50_added_ms": added,
                "grpc_p50_overhead_fraction": grpc_fraction,
                "bar": BAR,
                "met": grpc_fraction <= BAR,
            },
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    paths = result["paths"]
    names = list(paths)
    positions = range(len(names))
    ax.boxplot([[s * 1000 for s in paths[n]["all_s"]] for n in names], positions=positions)
    ax.set_xticks(list(positions), names)
    for i, name in enumerate(names):
        p50 = paths[name]["p50_s"] * 1000
        ax.annotate(f"p50 {p50:.0f} ms", (i, p50), xytext=(12, 0), textcoords="offset points")
    ax.set_ylabel("intrinsic call, client-side (ms)")
    ax.set_title(
        f"Reused intrinsic call on a {result['conversation_tokens']}-token conversation: "
        f"gRPC p50 overhead {result['bars']['grpc_p50_overhead_fraction']:.1%}"
    )
    ax.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    main(parser.parse_args().rounds)
