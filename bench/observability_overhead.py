"""What metrics and structured logs cost a reused intrinsic call.

The call: answerability on a ~1k-token real MTRAG conversation whose base KV is kept
(prefilled, untimed, right before), so each timed call reuses it. Two colocated engines
in this process, same configuration and seeded adapter: one records vLLM's own
Prometheus metrics (``EngineConfig(vllm_metrics=True)``), one does not. Around the
engine, the front door's reporting (``gateway.reporting.reported``):

- on, as replicas run: ``CallMetrics`` counts the call and the ``alora_serve`` logger
  writes its JSON lines (INFO, to a file); ``RayMetricsBridge.publish`` (the replicas'
  code, real Ray gauges in a local Ray) publishes every collector's samples (front door,
  KV store, vLLM) every 5 s in the background, as in every arm (replicas always publish
  at least the KV store's and gateway's gauges);
- off: ``reported(..., metrics=None)`` with the logger at WARNING.

A 2x2 of (engine with vLLM metrics or not) x (front door on or off) tells the two parts
apart; the vLLM part also holds whatever differs between the two engines. Two more arms
publish in every call as well (an upper bound), one on each engine, so that both engines
serve three arms a round. The bar: on vs off, p50 ratio at most
1.02. Arms go in a shuffled order each round, each on its own fresh conversation. Then
the instrumentation alone, without an engine, with timeit.

    python -m bench.observability_overhead [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from alora_serve.engine import Engine, EngineConfig
from alora_serve.engine.metrics import VLLMCollector
from alora_serve.engine.types import DEFAULT_TENANT
from alora_serve.gateway.admission import Admission
from alora_serve.gateway.metrics import CallMetrics, GatewayCollector
from alora_serve.gateway.reporting import reported
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.observability.logs import PACKAGE_LOGGER, configure_logging
from alora_serve.topology import local_ray
from alora_serve.topology.metrics import PUBLISH_INTERVAL_S, RayMetricsBridge
from bench.intrinsics_composition import fresh
from bench.report import write_report
from tests.support.conversations import rag_request

CONVERSATION_TOKENS = 1024
INTRINSIC = "answerability"
TENANT = DEFAULT_TENANT
ENGINE = EngineConfig(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.5)
# arm -> (engine records vLLM metrics, front door reports (CallMetrics, JSON logs),
#         the bridge publishes every collector in the call)
ARMS = {
    "on": (True, True, False),  # as replicas run: publishing every 5 s, not in the call
    "off": (False, False, False),
    "vLLM only": (True, False, False),
    "front door only": (False, True, False),
    "on, publish in every call": (True, True, True),  # an upper bound
    # Its twin on the other engine: each engine serves three arms a round, so both hold
    # as many conversations and do as much work between their timed calls.
    "front door only, publish in every call": (False, True, True),
}
WARMUP_ROUNDS = 2
BAR = 1.02  # on / off, p50
MICRO_ITERATIONS = 10_000
PUBLISH_ITERATIONS = 1_000
BOOTSTRAP = 2_000


class Instrumented:
    """The two engines and the front door's instrumentation, switched per call."""

    def __init__(self, runners: dict[bool, IntrinsicRunner], on_engine: Engine) -> None:
        self.runners = runners
        self.metrics = CallMetrics([INTRINSIC])
        collectors = [GatewayCollector(Admission(64)), *self.metrics.collectors()]
        collectors += [on_engine.kv.collector(), VLLMCollector()]
        self.collectors = collectors
        self.bridge = RayMetricsBridge(collectors, "colocated")
        self.logger = logging.getLogger(PACKAGE_LOGGER)

    def call(self, request) -> IntrinsicsCall:
        return IntrinsicsCall(intrinsics=[INTRINSIC], request=request, tenant=TENANT)

    async def prefill(self, arm: str, request) -> None:
        await self.runners[ARMS[arm][0]].prefill(self.call(request))

    async def timed(self, arm: str, request) -> tuple[float, list]:
        vllm_metrics, front_door, publish = ARMS[arm]
        runner, call = self.runners[vllm_metrics], self.call(request)
        self.logger.setLevel(logging.INFO if front_door else logging.WARNING)
        metrics = self.metrics if front_door else None
        started = time.perf_counter()
        results = await reported(call, started, lambda: runner.run_many(call), metrics)
        if publish:
            self.bridge.publish()
        return time.perf_counter() - started, results


async def measure(inst: Instrumented, request, rounds: int) -> tuple[dict, list]:
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    shuffled, results = random.Random(0), []
    # As in a replica, the bridge also publishes every 5 s, whatever the arm.
    publishing = asyncio.create_task(inst.bridge.publish_forever())
    for round_ in range(-WARMUP_ROUNDS, rounds):
        order = list(ARMS)
        shuffled.shuffle(order)
        for arm in order:
            conversation = fresh(request, f"{arm} {round_}")
            await inst.prefill(arm, conversation)
            seconds, results = await inst.timed(arm, conversation)
            if round_ >= 0:
                times[arm].append(seconds)
        if round_ >= 0:
            print(
                f"  round {round_ + 1}/{rounds}: "
                + ", ".join(f"{a}: {times[a][-1] * 1000:.0f} ms" for a in ARMS),
                flush=True,
            )
    publishing.cancel()
    return times, results


def micro(inst: Instrumented, request, results) -> dict:
    """Microseconds per call of the instrumentation alone (no engine): what ``reported``
    adds on, over off, and its parts; a bridge publish, with and without Ray."""
    call = inst.call(request)

    async def finished():
        return results

    def report(metrics) -> None:
        coroutine = reported(call, time.perf_counter(), finished, metrics)
        try:  # finished() never suspends: drive the coroutine without an event loop
            coroutine.send(None)
        except StopIteration:
            return
        raise AssertionError("reported() suspended")

    def per_call_us(fn, level: int, n: int = MICRO_ITERATIONS) -> float:
        inst.logger.setLevel(level)
        fn()  # first-use costs (label children, gauges) out of the timing
        return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

    def collect() -> int:
        return sum(len(f.samples) for c in inst.collectors for f in c.collect())

    costs = {
        "reported_on_us": per_call_us(lambda: report(inst.metrics), logging.INFO),
        "reported_off_us": per_call_us(lambda: report(None), logging.WARNING),
        "call_metrics_succeeded_us": per_call_us(
            lambda: inst.metrics.succeeded(results), logging.INFO
        ),
        "json_log_line_us": per_call_us(lambda: report(None), logging.INFO),
        "collect_all_us": per_call_us(collect, logging.INFO, PUBLISH_ITERATIONS),
        "bridge_publish_us": per_call_us(inst.bridge.publish, logging.INFO, PUBLISH_ITERATIONS),
        "samples_published": collect(),
        "collect_us_by_collector": {
            getattr(c, "_name", type(c).__name__): per_call_us(
                lambda c=c: sum(len(f.samples) for f in c.collect()), logging.INFO, 300
            )
            for c in inst.collectors
        },
    }
    costs["json_log_line_us"] -= costs["reported_off_us"]
    costs["per_call_us"] = costs["reported_on_us"] - costs["reported_off_us"]
    return costs


def summary(samples: list[float]) -> dict:
    return {
        "p50_s": statistics.median(samples),
        "p90_s": statistics.quantiles(samples, n=10, method="inclusive")[8],
        "mean_s": statistics.fmean(samples),
        "all_s": samples,
    }


def bootstrap_ratio(on: list[float], off: list[float]) -> list[float]:
    """95% interval of p50(on) / p50(off), resampling rounds (arms of a round together)."""
    pick, ratios = random.Random(1), []
    for _ in range(BOOTSTRAP):
        rounds = [pick.randrange(len(on)) for _ in on]
        ratios.append(
            statistics.median(on[i] for i in rounds) / statistics.median(off[i] for i in rounds)
        )
    ratios.sort()
    return [ratios[int(0.025 * BOOTSTRAP)], ratios[int(0.975 * BOOTSTRAP) - 1]]


def paired_ratio(on: list[float], off: list[float]) -> dict:
    """Median over rounds of on/off within each round (what drifts between rounds
    cancels), with a 95% bootstrap interval over rounds."""
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    pick, medians = random.Random(2), []
    for _ in range(BOOTSTRAP):
        medians.append(statistics.median(ratios[pick.randrange(len(ratios))] for _ in ratios))
    medians.sort()
    interval = [medians[int(0.025 * BOOTSTRAP)], medians[int(0.975 * BOOTSTRAP) - 1]]
    return {"median": statistics.median(ratios), "ci95": interval}


def analyse(times: dict[str, list[float]], costs: dict, rounds: int) -> dict:
    arms = {arm: summary(samples) for arm, samples in times.items()}
    p50 = {arm: arms[arm]["p50_s"] for arm in ARMS}
    ratio = p50["on"] / p50["off"]
    # 2x2: each factor's effect on p50, averaged over the other factor's two levels
    front_door = (p50["on"] - p50["vLLM only"] + p50["front door only"] - p50["off"]) / 2
    vllm = (p50["on"] - p50["front door only"] + p50["vLLM only"] - p50["off"]) / 2
    bound = p50["on, publish in every call"] / p50["off"]
    per_call_s = costs["per_call_us"] / 1e6
    publish_s = costs["bridge_publish_us"] / 1e6
    return {
        "conversation_tokens": CONVERSATION_TOKENS,
        "rounds": rounds,
        "arms": arms,
        "effects_p50_ms": {"front_door": front_door * 1000, "vllm_metrics": vllm * 1000},
        "paired_ratios": {
            "on / off": paired_ratio(times["on"], times["off"]),
            "front door only / off (same engine)": paired_ratio(
                times["front door only"], times["off"]
            ),
            "on / vLLM only (same engine)": paired_ratio(times["on"], times["vLLM only"]),
            "vLLM only / off (two engines)": paired_ratio(times["vLLM only"], times["off"]),
        },
        "micro": costs,
        "micro_fraction_of_off_p50": {
            "per_call": per_call_s / p50["off"],
            "publish_per_call": publish_s / p50["off"],
            "publish_every_5s_per_call": publish_s / PUBLISH_INTERVAL_S,
        },
        "bars": {
            "on_p50_s": p50["on"],
            "off_p50_s": p50["off"],
            "on_off_p50_ratio": ratio,
            "on_off_p50_ratio_ci95": bootstrap_ratio(times["on"], times["off"]),
            "on_minus_off_p50_ms": (p50["on"] - p50["off"]) * 1000,
            "upper_bound_off_p50_ratio": bound,
            "upper_bound_off_p50_ratio_ci95": bootstrap_ratio(
                times["on, publish in every call"], times["off"]
            ),
            "instrumentation_per_call_us": costs["per_call_us"],
            "bar": BAR,
            "met": ratio <= BAR,
        },
    }


def quiet_json_logs(path: Path) -> None:
    """The package's JSON logs, as replicas configure them, into ``path``."""
    configure_logging("json", "INFO", lambda: {"deployment": "ingress"})
    for handler in logging.getLogger(PACKAGE_LOGGER).handlers:
        if handler.get_name() == "alora_serve":
            handler.setStream(path.open("a"))  # open as long as the run


def main(rounds: int, metrics_engine_first: bool) -> None:
    from transformers import AutoTokenizer

    checkpoint = resolve_model(None)
    request = rag_request(AutoTokenizer.from_pretrained(checkpoint.path), CONVERSATION_TOKENS)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        print("Creating the seeded adapter with PEFT ...", flush=True)
        library = make_library(checkpoint, Path(tmp), [INTRINSIC])
        catalog = Catalog.from_library(library, checkpoint.name)
        engines: dict[bool, Engine] = {}
        try:
            # Which engine starts first is a factor of its own (where its processes and
            # memory land): the run can swap it.
            for vllm_metrics in (metrics_engine_first, not metrics_engine_first):
                print(f"Starting the engine with vllm_metrics={vllm_metrics} ...", flush=True)
                config = ENGINE.model_copy(update={"vllm_metrics": vllm_metrics})
                engines[vllm_metrics] = loop.run_until_complete(
                    Engine.start(config, catalog.adapters())
                )
            runners = {on: IntrinsicRunner(e, catalog) for on, e in engines.items()}
            with local_ray.running(num_cpus=1):  # Ray's gauges need a Ray, as in a replica
                quiet_json_logs(Path(tmp) / "calls.jsonl")
                inst = Instrumented(runners, engines[True])
                times, results = loop.run_until_complete(measure(inst, request, rounds))
                print("Timing the instrumentation alone ...", flush=True)
                costs = micro(inst, request, results)
                print(costs, flush=True)
        finally:
            for engine in engines.values():
                engine.close()
    result = {**analyse(times, costs, rounds), "metrics_engine_first": metrics_engine_first}
    name = "observability_overhead" + ("" if metrics_engine_first else "_swapped")
    write_report(name, result, plot=_plot)


def _plot(result: dict, ax) -> None:
    arms = result["arms"]
    names = list(arms)
    samples = [[s * 1000 for s in arms[n]["all_s"]] for n in names]
    positions = range(len(names))
    ax.boxplot(samples, positions=positions, whis=(10, 90))
    ax.set_xticks(list(positions), names, fontsize=8)
    top = max(arms[n]["p90_s"] for n in names) * 1000 * 1.1
    clipped = sum(s > top for each in samples for s in each)
    for i, name in enumerate(names):
        p50 = arms[name]["p50_s"] * 1000
        ax.annotate(f"p50 {p50:.1f}", (i, p50), xytext=(10, 0), textcoords="offset points")
    ax.set_ylim(min(min(each) for each in samples) * 0.97, top)
    bars, micro_ = result["bars"], result["micro"]
    low, high = bars["on_off_p50_ratio_ci95"]
    ax.set_ylabel(f"reused call, ms (whiskers p10-p90; {clipped} above)")
    ax.set_title(
        f"on / off p50: {bars['on_off_p50_ratio']:.3f} (95% {low:.3f}-{high:.3f}); "
        f"publishing in every call: {bars['upper_bound_off_p50_ratio']:.3f}; bar {bars['bar']}\n"
        f"instrumentation alone: {micro_['per_call_us']:.0f} µs per call + "
        f"{micro_['bridge_publish_us'] / 1000:.1f} ms per publish "
        f"({micro_['samples_published']} samples)",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument(
        "--metrics-engine-second",
        action="store_true",
        help="start the engine without vLLM metrics first (results: *_swapped)",
    )
    args = parser.parse_args()
    main(args.rounds, not args.metrics_engine_second)
