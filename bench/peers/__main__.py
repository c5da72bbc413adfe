"""alora-serve against the peers a user would pick instead for aLoRA intrinsics, side by
side in one run: llama.cpp's ``llama-server`` (aLoRA in GGUF) at each of its settings,
and PEFT/transformers reusing a ``DynamicCache``.

The call is what an intrinsic costs after a base-model turn: a conversation (MTRAG, 256 to
4k tokens) whose base KV each system computed beforehand, then the adapter's invocation
and ``n`` greedy new tokens (EOS ignored), timed at the caller. Same checkpoint (SmolLM2
fp32; llama.cpp's is converted from it to f32 GGUF), same seeded all-linear r=8 aLoRA
(converted with llama.cpp's converter), same conversations and invocation. Rounds are
interleaved: each round takes a fresh conversation per length and calls every system
on it in turn, so a slow spell of this shared machine hits all of them alike. Each
system's output is checked against PEFT's on the same call (tokens, and the logprob of
each generated token).

alora-serve runs in process, no gateway (see ``bench.gateway_overhead`` for the gateway's
cost): ``colocated`` (one engine, adapters as LoRA, its own KV store), ``merged worker``
(the adapter merged into a decode engine's weights; base KV read in place from the
colocated engine's store, as a same-host prefill service lends it) and ``LoRA worker``
(a multi-LoRA decode engine attached the same way).

    python -m bench.peers [--lengths 256 1024 2048 4096] [--new-tokens 8 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from alora_serve.adapters import read_adapter
from alora_serve.adapters.synthetic import make_adapter
from alora_serve.engine import Engine, EngineConfig, SamplingOptions
from alora_serve.model import resolve_model
from alora_serve.prefill.service import PrefillService
from alora_serve.transfer.remote_prefixes import attach_to_prefill
from bench.alora_latency import INVOCATION, fresh_prompt
from bench.peers import llama_server
from bench.peers.peft_cache import PeftCache
from bench.report import write_report

THREADS = 2
SETTINGS = [llama_server.Setting(kv, fa) for kv in ("f16", "f32") for fa in (False, True)]
# Quiet between systems: vLLM's engine core busy-polls its worker for 1 s after a step,
# which would take a core from whichever system runs next.
PAUSE_S = 1.2


@dataclass
class Call:
    """One system's reused call, as measured and as checked against PEFT's."""

    seconds: float
    tokens: list[int]
    logprobs: list[float]
    computed: int | None = None  # prompt tokens it computed (None: not reported)


class AloraSystems:
    """The three in-process alora-serve modes on one adapter."""

    def __init__(self, colocated: Engine, merged: Engine, lora: Engine) -> None:
        self.engines = {
            "alora-serve colocated": colocated,
            "alora-serve merged worker": merged,
            "alora-serve LoRA worker": lora,
        }
        self.prefill = colocated

    @classmethod
    async def start(cls, adapter: Path, context: int) -> AloraSystems:
        config = dict(max_model_len=context, kv_cache_gib=1.0, kv_store_gib=1.0)
        spec = [read_adapter(adapter, "alora")]
        started = []
        try:
            for mode in ("lora", "merged", "lora"):  # colocated, merged worker, LoRA worker
                started.append(await Engine.start(EngineConfig(**config, adapter_mode=mode), spec))
        except BaseException:
            for engine in started:
                engine.close()
            raise
        colocated, merged, lora = started
        service = PrefillService(colocated.kv, host="this-host")
        for worker in (merged, lora):
            attach_to_prefill(worker, service, "this-host")
        return cls(colocated, merged, lora)

    async def base_turn(self, conversation: list[int]) -> float:
        started = time.perf_counter()
        async with self.prefill.kv.leased(conversation, "default"):
            pass
        return time.perf_counter() - started

    async def call(self, name: str, prompt: list[int], new_tokens: int) -> Call:
        options = SamplingOptions(max_tokens=new_tokens, ignore_eos=True, logprobs=0)
        started = time.perf_counter()
        result = await self.engines[name].invoke("alora", prompt, options)
        seconds = time.perf_counter() - started
        computed = result.usage.prompt_tokens - result.usage.reused_prompt_tokens
        logprobs = [step.chosen.logprob for step in result.logprobs or ()]
        return Call(seconds, list(result.token_ids), logprobs, computed)

    async def shutdown(self) -> None:
        for engine in self.engines.values():
            await engine.shutdown()


def _compare(call: Call, reference: Call) -> dict:
    """How far a system's output is from PEFT's: tokens equal up to the first difference,
    and the largest logprob difference over those tokens."""
    same = 0
    for mine, theirs in zip(call.tokens, reference.tokens, strict=False):
        if mine != theirs:
            break
        same += 1
    deltas = [
        abs(a - b) for a, b in zip(call.logprobs[:same], reference.logprobs[:same], strict=True)
    ]
    return {
        "equal_tokens": same,
        "of": len(reference.tokens),
        "max_logprob_delta": max(deltas, default=0.0),
    }


@dataclass
class Contenders:
    """Every system of the run, and what each call is made of."""

    tokenizer: object
    invocation: list[int]
    systems: AloraSystems
    servers: dict[str, llama_server.LlamaServer]
    peft: PeftCache


async def run_round(
    round_no: int, lengths: list[int], new_tokens: list[int], contenders: Contenders, record
) -> None:
    systems, servers, peft = contenders.systems, contenders.servers, contenders.peft
    for length in lengths:
        conversation = fresh_prompt(contenders.tokenizer, length, f"peers {length}/{round_no}")
        prompt = conversation + contenders.invocation
        # the base-model turn on every system (not timed as the call)
        base_kv = {"alora-serve": await systems.base_turn(conversation)}
        for name, server in servers.items():
            time.sleep(PAUSE_S)
            base_kv[name] = server.complete(conversation, 1, adapter=False).seconds
        time.sleep(PAUSE_S)
        started = time.perf_counter()
        cache = peft.base_kv(conversation)
        base_kv["PEFT DynamicCache"] = time.perf_counter() - started
        for n in new_tokens:
            reference = peft.generate(prompt, n, cache)
            calls = {
                "PEFT DynamicCache": Call(reference.seconds, reference.tokens, reference.logprobs)
            }
            if round_no == 0:  # the cache pattern itself, against PEFT without a cache
                cold = peft.generate(prompt, n)
                calls["PEFT without cache"] = Call(cold.seconds, cold.tokens, cold.logprobs)
            for name in systems.engines:
                time.sleep(PAUSE_S)
                calls[name] = await systems.call(name, prompt, n)
            for name, server in servers.items():
                time.sleep(PAUSE_S)
                done = server.complete(prompt, n, adapter=True)
                calls[name] = Call(done.seconds, done.tokens, done.logprobs, done.prompt_computed)
            for name, call in calls.items():
                record[(name, length, n)].append(
                    {
                        "seconds": call.seconds,
                        "computed": call.computed,
                        **_compare(call, calls["PEFT DynamicCache"]),
                    }
                )
            line = ", ".join(f"{name} {c.seconds:.2f}" for name, c in calls.items())
            print(f"  round {round_no + 1}, {length} tokens, {n} new: {line}", flush=True)
        for name, seconds in base_kv.items():
            record[(f"base KV: {name}", length, 0)].append({"seconds": seconds})


def summarize(record: dict) -> list[dict]:
    rows = []
    for (system, length, n), samples in sorted(record.items()):
        seconds = [s["seconds"] for s in samples]
        row = {
            "system": system,
            "conversation_tokens": length,
            "new_tokens": n,
            "median_s": statistics.median(seconds),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "all_s": seconds,
        }
        if "equal_tokens" in samples[0]:
            row["equal_tokens_min"] = min(s["equal_tokens"] for s in samples)
            row["of_tokens"] = samples[0]["of"]
            row["max_logprob_delta"] = max(s["max_logprob_delta"] for s in samples)
            row["computed_prompt_tokens"] = samples[0]["computed"]
        rows.append(row)
    return rows


def _by_call(rows: list[dict]) -> dict[tuple[str, int, int], dict]:
    """Rows by (system, conversation tokens, new tokens)."""
    return {(r["system"], r["conversation_tokens"], r["new_tokens"]): r for r in rows}


def ratios(rows: list[dict]) -> list[dict]:
    """Each alora-serve mode against the best peer (the fastest median of llama-server's
    settings and PEFT) on the same length and new tokens; spread from the per-round
    ratios to that peer's same-round call."""
    by = _by_call(rows)
    out = []
    for (system, length, n), row in by.items():
        if not system.startswith("alora-serve"):
            continue
        peers = [
            r
            for (s, ln, k), r in by.items()
            if ln == length
            and k == n
            and (s.startswith("llama-server") or s == "PEFT DynamicCache")
        ]
        best = min(peers, key=lambda r: r["median_s"])
        per_round = [a / b for a, b in zip(row["all_s"], best["all_s"], strict=True)]
        out.append(
            {
                "system": system,
                "conversation_tokens": length,
                "new_tokens": n,
                "best_peer": best["system"],
                "best_peer_s": best["median_s"],
                "ours_s": row["median_s"],
                "ratio": row["median_s"] / best["median_s"],
                "ratio_min": min(per_round),
                "ratio_max": max(per_round),
            }
        )
    return out


async def main(lengths: list[int], new_tokens: list[int], repeats: int) -> None:
    from transformers import AutoTokenizer

    checkpoint = resolve_model(None).path
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    invocation = tokenizer.encode(INVOCATION, add_special_tokens=False)
    context = max(lengths) + max(new_tokens) + 64
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("Seeded aLoRA adapter (PEFT), GGUF conversions, llama-server ...", flush=True)
        adapter = make_adapter(checkpoint, work / "alora", seed=1, invocation_tokens=invocation)
        model_gguf = llama_server.convert_model(checkpoint, llama_server.CACHE / "gguf")
        adapter_gguf = llama_server.convert_adapter(adapter, checkpoint, work / "gguf")
        peft = PeftCache(checkpoint, adapter, THREADS)
        print("Starting alora-serve's three engines ...", flush=True)
        systems = await AloraSystems.start(adapter, context)
        record: dict = defaultdict(list)
        try:
            servers = {}
            with ExitStack() as stack:
                for setting in SETTINGS:
                    log = work / f"llama-server {setting.kv_type} {setting.flash_attention}.log"
                    servers[setting.name] = stack.enter_context(
                        llama_server.running(
                            model_gguf, adapter_gguf, setting, context, THREADS, log
                        )
                    )
                contenders = Contenders(tokenizer, invocation, systems, servers, peft)
                # a warm-up round (first-use costs of every system), not recorded
                await run_round(-1, [256], [8], contenders, defaultdict(list))
                for round_no in range(repeats):
                    await run_round(round_no, lengths, new_tokens, contenders, record)
        finally:
            await systems.shutdown()
    rows = summarize(record)
    compared = ratios(rows)
    bars = _bars(rows, compared, lengths)
    write_report(
        "peers",
        {"threads": THREADS, "repeats": repeats, "rows": rows, "ratios": compared, "bars": bars},
        plot=_plot,
    )


def _bars(rows: list[dict], compared: list[dict], lengths: list[int]) -> dict:
    by = _by_call(rows)
    shortest, longest = min(lengths), max(lengths)
    bars = {"worst_ratio_to_best_peer": max(c["ratio"] for c in compared)}
    for system in ("alora-serve colocated", "alora-serve merged worker", "alora-serve LoRA worker"):
        bars[f"{system}: growth {shortest} -> {longest} (8 new)"] = (
            by[(system, longest, 8)]["median_s"] / by[(system, shortest, 8)]["median_s"]
        )
    bars["LoRA worker / merged worker, 8 new (worst length)"] = max(
        by[("alora-serve LoRA worker", n, 8)]["median_s"]
        / by[("alora-serve merged worker", n, 8)]["median_s"]
        for n in lengths
    )
    return bars


def _plot(result: dict, ax) -> None:
    rows = [r for r in result["rows"] if r["new_tokens"] == 8]
    for system in sorted({r["system"] for r in rows}):
        mine = sorted(
            (r for r in rows if r["system"] == system), key=lambda r: r["conversation_tokens"]
        )
        style = "o-" if system.startswith("alora-serve") else "s--"
        ax.plot(
            [r["conversation_tokens"] for r in mine],
            [r["median_s"] for r in mine],
            style,
            label=system,
        )
    ax.set_xlabel("conversation tokens (base KV computed beforehand)")
    ax.set_ylabel("reused aLoRA call, 8 new tokens (s, median)")
    ax.set_title("alora-serve vs llama-server and PEFT (SmolLM2-135M fp32, 2 threads)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048, 4096])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.lengths, args.new_tokens, args.repeats))
