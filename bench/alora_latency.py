"""Latency of an aLoRA intrinsic call after a conversation: base KV reused vs recomputed.

One engine, one adapter's weights loaded twice: as aLoRA (the call reuses the
conversation's base KV from the store and computes only the invocation and the new
tokens) and as a plain LoRA (the call recomputes the whole conversation with the adapter:
what serving without aLoRA costs). Each measured call is the first intrinsic call on a
fresh conversation whose base KV was prefilled before (as after a base-model turn).
Latencies are medians; the growth of the reused call with conversation length is the
median over rounds of (longest / shortest), both measured back to back in the round.

    python -m bench.alora_latency [--lengths 256 1024 2048 4096] [--repeats 3]
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
from alora_serve.engine import Engine, EngineConfig, SamplingOptions
from alora_serve.model import resolve_model
from bench.report import write_report
from tests.support.conversations import conversation, render

NEW_TOKENS = 8
INVOCATION = "<|im_start|>answerability\n"
OPTIONS = SamplingOptions(max_tokens=NEW_TOKENS, ignore_eos=True)


def fresh_prompt(tokenizer, length: int, tag: str) -> list[int]:
    """A conversation of ``length`` tokens made unique by a tag at its very start, so no
    cache (vLLM's or ours) holds any of it."""
    messages = conversation(tokenizer, length - 8)
    messages[0] = {**messages[0], "content": f"[{tag}] {messages[0]['content']}"}
    return render(tokenizer, messages)


async def timed(call) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def measure(
    engine: Engine, invocation: list[int], lengths, repeats: int, recompute_repeats: int
) -> tuple[list[dict], list[float]]:
    tokenizer = engine.tokenizer
    warm = fresh_prompt(tokenizer, 256, "warmup") + invocation
    await engine.invoke("alora", warm, OPTIONS)
    await engine.invoke("lora", warm, OPTIONS)
    reused = {length: [] for length in lengths}
    recomputed = {length: [] for length in lengths}
    growth = []  # per round: reused latency at the longest / at the shortest length
    for rep in range(repeats):
        conversations = {n: fresh_prompt(tokenizer, n, f"reuse {n}/{rep}") for n in lengths}
        for conv in conversations.values():
            async with engine.kv.leased(conv, "default"):
                pass  # the conversation's base KV, as left by the base model's turn
        # The reused calls of a round run back to back, so that a slow spell of this
        # shared machine hits every length alike.
        for length, conv in conversations.items():
            reused[length].append(await timed(engine.invoke("alora", conv + invocation, OPTIONS)))
        growth.append(reused[lengths[-1]][-1] / reused[lengths[0]][-1])
        if rep < recompute_repeats:
            for length in lengths:
                conv = fresh_prompt(tokenizer, length, f"recompute {length}/{rep}")
                recomputed[length].append(
                    await timed(engine.invoke("lora", conv + invocation, OPTIONS))
                )
        print(
            f"  round {rep + 1}/{repeats}: reused "
            + ", ".join(f"{n}: {reused[n][-1]:.2f} s" for n in lengths)
            + (
                "; recomputed " + ", ".join(f"{n}: {recomputed[n][-1]:.2f} s" for n in lengths)
                if rep < recompute_repeats
                else ""
            ),
            flush=True,
        )
    rows = []
    for length in lengths:
        row = {
            "prefix_tokens": length,
            "reused_s": statistics.median(reused[length]),
            "recomputed_s": statistics.median(recomputed[length]),
            "reused_all_s": reused[length],
            "recomputed_all_s": recomputed[length],
        }
        row["speedup"] = row["recomputed_s"] / row["reused_s"]
        rows.append(row)
    return rows, growth


async def main(lengths: list[int], repeats: int, recompute_repeats: int) -> None:
    base = resolve_model(None).path
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoTokenizer

        invocation = AutoTokenizer.from_pretrained(base).encode(
            INVOCATION, add_special_tokens=False
        )
        print("Creating a seeded test adapter with PEFT ...", flush=True)
        alora = make_adapter(base, Path(tmp) / "alora", seed=1, invocation_tokens=invocation)
        lora = make_adapter(base, Path(tmp) / "lora", seed=1, invocation_tokens=None)
        config = EngineConfig(max_model_len=max(lengths) + 512, kv_store_gib=1.0)
        print("Starting the engine ...", flush=True)
        engine = await Engine.start(
            config, [read_adapter(alora, "alora"), read_adapter(lora, "lora")]
        )
        try:
            rows, growth = await measure(engine, invocation, lengths, repeats, recompute_repeats)
        finally:
            await engine.shutdown()
    bars = {
        "speedup_at_2k": next((r["speedup"] for r in rows if r["prefix_tokens"] == 2048), None),
        "reused_growth_first_to_last": statistics.median(growth),
    }
    write_report(
        "alora_latency",
        {
            "new_tokens": NEW_TOKENS,
            "repeats": repeats,
            "recompute_repeats": recompute_repeats,
            "rows": rows,
            "reused_growth_per_round": growth,
            "bars": bars,
        },
        plot=_plot,
    )


def _plot(result: dict, ax) -> None:
    rows = result["rows"]
    x = [r["prefix_tokens"] for r in rows]
    ax.plot(x, [r["recomputed_s"] for r in rows], "o-", label="LoRA, full recompute")
    ax.plot(x, [r["reused_s"] for r in rows], "o-", label="aLoRA, base KV reused")
    for r in rows:
        ax.annotate(
            f"{r['speedup']:.1f}x",
            (r["prefix_tokens"], r["reused_s"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    ax.set_xlabel("conversation tokens before the invocation")
    ax.set_ylabel(f"intrinsic call latency, {NEW_TOKENS} new tokens (s, median)")
    ax.set_yscale("log")
    ax.set_title("aLoRA call latency on vLLM-CPU (SmolLM2-135M, fp32)")
    ax.legend()
    ax.grid(alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=7, help="rounds of reused calls")
    parser.add_argument("--recompute-repeats", type=int, default=3, help="rounds with baseline")
    args = parser.parse_args()
    asyncio.run(main(args.lengths, args.repeats, args.recompute_repeats))
