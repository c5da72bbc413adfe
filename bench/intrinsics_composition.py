"""k intrinsics on one 2k-token conversation: one composed call vs k separate calls vs k
calls with full recompute (the same adapters as plain LoRA: serving without aLoRA).

Each measurement runs on a fresh conversation (a unique tag at its very start, so no
cache holds it) whose base KV was stored before, as after the base model's turn. The
composed call computes the conversation's shared prefix once and runs the adapters
batched; separate calls run one after the other (each finds the prefix stored, but pays
its own adapter pass); recompute calls run the whole prompt through the LoRA adapter.

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
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.rewrite import Document, IntrinsicRequest
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from bench.report import write_report
from tests.support.conversations import rag_request

# Short, similar outputs, so the comparison measures composition rather than output
# length (seeded adapters write arbitrary amounts of free text). The fifth is a custom
# intrinsic: a second answerability adapter defined by its own io.yaml.
INTRINSICS = [
    "answerability",
    "uncertainty",
    "requirement_check",
    "context_relevance",
    "answerability_b",
]
CUSTOM = {"answerability_b": "answerability"}  # custom intrinsic -> built-in io.yaml it copies
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
    call = runner.prepare(INTRINSICS[0], request)
    async with runner.engine.prefixes.leased(call.prompt[: call.adapter_start], TENANT):
        pass


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def composed(runner, request, names) -> None:
    await runner.run_many(names, request, TENANT, arguments=_arguments(names))


async def separate(runner, request, names) -> None:
    for name in names:
        await runner.run(name, _with_arguments(request, name), TENANT)


async def recomputed(runner, request, names) -> None:
    for name in names:
        call = runner.prepare(name, _with_arguments(request, name))
        await runner.engine.invoke(name + LORA_SUFFIX, call.prompt, call.options, TENANT)


def _arguments(names):
    return {n: ARGUMENTS[n] for n in names if n in ARGUMENTS}


def _with_arguments(request, name):
    return request.model_copy(update={"arguments": ARGUMENTS.get(name, {})})


async def measure(runner, base_request, ks, repeats, recompute_repeats) -> list[dict]:
    modes = {"composed": composed, "separate": separate, "recomputed": recomputed}
    times = {(mode, k): [] for mode in modes for k in ks}
    await composed(runner, fresh(base_request, "warmup"), INTRINSICS)  # compile grammars
    for rep in range(repeats):
        for mode, run in modes.items():
            if mode == "recomputed" and rep >= recompute_repeats:
                continue
            for k in ks:
                request = fresh(base_request, f"{mode} {k}/{rep}")
                await store_conversation(runner, request)
                times[mode, k].append(await timed(run(runner, request, INTRINSICS[:k])))
        print(
            f"  round {rep + 1}/{repeats}: "
            + "; ".join(
                f"{mode} " + ", ".join(f"k={k}: {times[mode, k][-1]:.2f} s" for k in ks)
                for mode in modes
                if times[mode, ks[0]] and len(times[mode, ks[0]]) == rep + 1
            ),
            flush=True,
        )
    return [
        {
            "k": k,
            **{f"{mode}_s": statistics.median(times[mode, k]) for mode in modes},
            **{f"{mode}_all_s": times[mode, k] for mode in modes},
        }
        for k in ks
    ]


async def main(ks: list[int], repeats: int, recompute_repeats: int) -> None:
    checkpoint = resolve_model(None)
    names = INTRINSICS[: max(ks)]
    with tempfile.TemporaryDirectory() as tmp:
        print("Creating seeded adapters with PEFT ...", flush=True)
        library = make_library(checkpoint, Path(tmp) / "library", names)
        for custom, definition in CUSTOM.items():
            if custom in names:
                io_yaml = (BUILTIN_DIR / f"{definition}.yaml").read_text()
                (library / custom / checkpoint.name / "alora" / "io.yaml").write_text(io_yaml)
        catalog = Catalog.from_library(library, checkpoint.name)
        loras = [
            read_adapter(
                make_adapter(
                    checkpoint.path,
                    Path(tmp) / "lora" / name,
                    seed=100 + i,  # make_library's seeds: the same weights, always on
                    invocation_tokens=None,
                ),
                name + LORA_SUFFIX,
            )
            for i, name in enumerate(names)
        ]
        config = EngineConfig(max_model_len=4096, kv_store_gib=1.0, max_loras=len(names))
        print("Starting the engine ...", flush=True)
        engine = await Engine.start(config, catalog.adapters() + loras)
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
            request = rag_request(tokenizer, CONVERSATION_TOKENS)
            runner = IntrinsicRunner(engine, catalog)
            prompt = runner.prepare(INTRINSICS[0], request).prompt
            print(f"Conversation: {len(prompt)} prompt tokens", flush=True)
            rows = await measure(runner, request, ks, repeats, recompute_repeats)
        finally:
            await engine.shutdown()
    by_k = {row["k"]: row for row in rows}
    k_max = by_k[max(ks)]
    bars = {
        "composed_k_max_over_k1": k_max["composed_s"] / by_k[min(ks)]["composed_s"],
        # The same k intrinsics one at a time, on average: the other reading of "one".
        "composed_k_max_over_mean_single": k_max["composed_s"] / (k_max["separate_s"] / max(ks)),
        "separate_over_composed_at_k_max": by_k[max(ks)]["separate_s"]
        / by_k[max(ks)]["composed_s"],
        "recomputed_over_composed_at_k_max": by_k[max(ks)]["recomputed_s"]
        / by_k[max(ks)]["composed_s"],
    }
    write_report(
        "intrinsics_composition",
        {
            "intrinsics": INTRINSICS[: max(ks)],
            "prompt_tokens": len(prompt),
            "repeats": repeats,
            "recompute_repeats": recompute_repeats,
            "rows": rows,
            "bars": bars,
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    rows = result["rows"]
    ks = [r["k"] for r in rows]
    width = 0.27
    labels = {
        "composed": "one composed call (aLoRA)",
        "separate": "k separate calls (aLoRA)",
        "recomputed": "k calls, full recompute (LoRA)",
    }
    for i, (mode, label) in enumerate(labels.items()):
        ax.bar(
            [k + (i - 1) * width for k in ks], [r[f"{mode}_s"] for r in rows], width, label=label
        )
    ax.set_xticks(ks)
    ax.set_xlabel("intrinsics on the conversation (k)")
    ax.set_ylabel("latency (s, median)")
    ax.set_yscale("log")
    ax.set_title(f"k intrinsics on one {result['prompt_tokens']}-token conversation (vLLM-CPU)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recompute-repeats", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(sorted(args.ks), args.repeats, args.recompute_repeats))
