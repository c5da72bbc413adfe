"""End-to-end intrinsic latency on a 2k-token conversation, per serving topology.

One Ray Serve instance runs two applications on the embedded model, all with the same
adapter weights (a seeded answerability adapter):

- ``disaggregated``: a prefill service and two decode workers, one with the adapter
  merged into its weights (``merged``), one with it as a LoRA (``lora``);
- ``colocated``: one engine with the adapter as aLoRA (``colocated``) and as a plain LoRA
  (``full recompute``: what serving the intrinsic costs without aLoRA).

Each measured call is the first intrinsic call on a fresh conversation (a unique tag at
its start) whose base KV was computed before (``prefill``, as after the base model's
turn), timed at the client through the ingress (Serve hops included).

    python -m bench.disaggregated_latency [--repeats 5] [--recompute-repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from alora_serve.adapters.synthetic import make_adapter
from alora_serve.engine import EngineConfig
from alora_serve.intrinsics.builtins import BUILTIN_DIR
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.topology import local_ray
from alora_serve.topology.app import build_app
from alora_serve.topology.config import DecodeGroup, PrefillConfig, TopologyConfig
from bench.intrinsics_composition import fresh
from bench.report import write_report
from tests.support.conversations import rag_request

CONVERSATION_TOKENS = 2048
INTRINSIC = "answerability"
AS_LORA_MODE = "answerability_lora_mode"  # the same adapter, served by a multi-LoRA worker
AS_PLAIN_LORA = "answerability_recompute"  # the same weights without aLoRA
ENGINE = EngineConfig(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.5)
# mode -> (application, intrinsic)
MODES = {
    "merged": ("disaggregated", INTRINSIC),
    "lora": ("disaggregated", AS_LORA_MODE),
    "colocated": ("colocated", INTRINSIC),
}
RECOMPUTE = ("colocated", AS_PLAIN_LORA)


def make_bench_library(root: Path) -> Path:
    checkpoint = resolve_model(None)
    library = make_library(checkpoint, root, [INTRINSIC])  # seed 100
    source = library / INTRINSIC / checkpoint.name / "alora"
    copy = shutil.copytree(source, library / AS_LORA_MODE / checkpoint.name / "alora")
    plain = make_adapter(
        checkpoint.path,
        library / AS_PLAIN_LORA / checkpoint.name / "lora",
        seed=100,
        invocation_tokens=None,
    )
    for adapter in (copy, plain):  # the built-in definition, under the copies' own names
        shutil.copyfile(BUILTIN_DIR / f"{INTRINSIC}.yaml", adapter / "io.yaml")
    return library


def topologies() -> dict[str, TopologyConfig]:
    return {
        "disaggregated": TopologyConfig(
            intrinsics=[INTRINSIC, AS_LORA_MODE],
            prefill=PrefillConfig(engine=ENGINE),
            decode=[
                DecodeGroup(name="merged", intrinsics=[INTRINSIC], engine=ENGINE),
                DecodeGroup(name="lora", intrinsics=[AS_LORA_MODE], mode="lora", engine=ENGINE),
            ],
        ),
        "colocated": TopologyConfig(
            topology="colocated", intrinsics=[INTRINSIC, AS_PLAIN_LORA], colocated=ENGINE
        ),
    }


def timed_call(ingress, intrinsic: str, request) -> tuple[float, float]:
    """(client-side seconds, worker-side seconds) of one intrinsic call."""
    started = time.perf_counter()
    call = IntrinsicsCall(intrinsics=[intrinsic], request=request, tenant="bench")
    (result,) = ingress.run_many.remote(call).result()
    return time.perf_counter() - started, result.timings.worker_s


def measure(apps: dict, request, repeats: int, recompute_repeats: int) -> dict[str, dict]:
    for app, intrinsic in (*MODES.values(), RECOMPUTE):  # warm up every path once
        timed_call(apps[app], intrinsic, fresh(request, f"warmup {intrinsic}"))
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in (*MODES, "full recompute")}
    for round_ in range(repeats):
        for mode, (app, intrinsic) in MODES.items():
            conversation = fresh(request, f"{mode} {round_}")
            call = IntrinsicsCall(intrinsics=[intrinsic], request=conversation, tenant="bench")
            apps[app].prefill.remote(call).result()
            runs[mode].append(timed_call(apps[app], intrinsic, conversation))
        if round_ < recompute_repeats:
            app, intrinsic = RECOMPUTE
            conversation = fresh(request, f"recompute {round_}")
            runs["full recompute"].append(timed_call(apps[app], intrinsic, conversation))
        print(
            f"  round {round_ + 1}/{repeats}: "
            + ", ".join(f"{m}: {r[-1][0]:.2f} s" for m, r in runs.items() if len(r) > round_),
            flush=True,
        )
    return {
        mode: {
            "median_s": statistics.median(client for client, _ in times),
            "worker_median_s": statistics.median(worker for _, worker in times),
            "all_s": [client for client, _ in times],
        }
        for mode, times in runs.items()
    }


def main(repeats: int, recompute_repeats: int) -> None:
    from ray import serve
    from transformers import AutoTokenizer

    checkpoint = resolve_model(None)
    request = rag_request(AutoTokenizer.from_pretrained(checkpoint.path), CONVERSATION_TOKENS)
    with tempfile.TemporaryDirectory() as tmp:
        print("Creating seeded adapters with PEFT ...", flush=True)
        library = make_bench_library(Path(tmp))
        with local_ray.running():
            try:
                print("Starting both applications (four engines) ...", flush=True)
                apps = {
                    name: serve.run(build_app(config, library), name=name, route_prefix=None)
                    for name, config in topologies().items()
                }
                modes = measure(apps, request, repeats, recompute_repeats)
            finally:
                serve.shutdown()
    colocated = modes["colocated"]["median_s"]
    write_report(
        "disaggregated_latency",
        {
            "conversation_tokens": CONVERSATION_TOKENS,
            "repeats": repeats,
            "recompute_repeats": recompute_repeats,
            "modes": modes,
            "bars": {
                "merged_over_colocated": modes["merged"]["median_s"] / colocated,
                "lora_over_colocated": modes["lora"]["median_s"] / colocated,
                "recompute_over_merged": modes["full recompute"]["median_s"]
                / modes["merged"]["median_s"],
            },
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    modes = result["modes"]
    names = list(modes)
    ax.bar(names, [modes[n]["median_s"] for n in names], color=["C0", "C1", "C2", "grey"])
    for i, name in enumerate(names):
        value = modes[name]["median_s"]
        ax.annotate(f"{value:.2f} s", (i, value), ha="center", va="bottom")
    ax.set_yscale("log")
    ax.set_ylabel("intrinsic call, client-side (s, median)")
    ax.set_title(
        f"Intrinsic call on a {result['conversation_tokens']}-token conversation, by topology"
    )
    ax.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recompute-repeats", type=int, default=2)
    args = parser.parse_args()
    main(args.repeats, args.recompute_repeats)
