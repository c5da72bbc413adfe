"""vLLM-CPU's LoRA ops per model step: the grouped wrapper against vLLM's stock one.

Every LoRA layer of SmolLM2-135M (30 layers: fused q/k/v, o, fused gate/up, down), r=8,
fp32, through the punica wrapper's ``add_lora_linear`` as vLLM's LoRA layers call it, for
one request's decode step, a decode step of five requests with five different adapters,
a 256-token prefill and a prefill of five requests with five adapters. Both wrappers run
the same batches, alternating, in one process; each figure is the median of the repeats.
Outputs are compared too.

    python -m bench.lora_ops [--repeats 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from vllm.lora.layers.utils import LoRAMapping
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from alora_serve.lora_ops.grouped import GroupedPunicaWrapperCPU
from bench.report import write_report

LAYERS, HIDDEN, KV, INTERMEDIATE, RANK, SLOTS = 30, 576, 192, 1536, 8, 8
# (input size, output slices) of each LoRA layer of a decoder layer
PROJECTIONS = {
    "qkv": (HIDDEN, (HIDDEN, KV, KV)),
    "o": (HIDDEN, (HIDDEN,)),
    "gate_up": (HIDDEN, (INTERMEDIATE, INTERMEDIATE)),
    "down": (INTERMEDIATE, (HIDDEN,)),
}
# lora id per token; vLLM-CPU marks every step a prefill (its LoRA runner mixin), so
# decode steps take the same path as here
CASES = {
    "decode, 1 request": [1],
    "decode, 5 requests, 5 adapters": [1, 2, 3, 4, 5],
    "prefill, 256 tokens": [1] * 256,
    "prefill, 5 requests x 64 tokens, 5 adapters": [i for i in range(1, 6) for _ in range(64)],
}


def _weights(generator: torch.Generator) -> dict:
    weights = {}
    for name, (inputs, slices) in PROJECTIONS.items():
        a = tuple(torch.randn(SLOTS, 1, RANK, inputs, generator=generator) for _ in slices)
        b = tuple(torch.randn(SLOTS, 1, n, RANK, generator=generator) for n in slices)
        weights[name] = (a, b)
    return weights


def _inputs(tokens: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A step's inputs to every LoRA layer (made before the clock starts)."""
    return [
        torch.randn(tokens, inputs, generator=generator)
        for _ in range(LAYERS)
        for inputs, _ in PROJECTIONS.values()
    ]


def _step(wrapper, weights: dict, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """One model step's LoRA work; returns the outputs."""
    outputs, layer_inputs = [], iter(inputs)
    for _ in range(LAYERS):
        for name, (_, slices) in PROJECTIONS.items():
            x = next(layer_inputs)
            y = torch.zeros(x.shape[0], sum(slices))
            a, b = weights[name]
            wrapper.add_lora_linear(y, x, a, b, scale=2.0, output_slices=slices)
            outputs.append(y)
    return outputs


def measure(repeats: int) -> list[dict]:
    weights = _weights(torch.Generator().manual_seed(0))
    lora_ids = list(range(1, SLOTS + 1))
    rows = []
    for case, index_mapping in CASES.items():
        wrappers = {}
        for kind, cls in (("stock", PunicaWrapperCPU), ("grouped", GroupedPunicaWrapperCPU)):
            wrapper = cls(max_num_batched_tokens=512, max_batches=16, device="cpu")
            requests = sorted(set(index_mapping), key=index_mapping.index)
            mapping = LoRAMapping(index_mapping, requests, is_prefill=True)
            wrapper.update_metadata(mapping, lora_ids, SLOTS, vocab_size=49152)
            wrappers[kind] = wrapper
        inputs = _inputs(len(index_mapping), torch.Generator().manual_seed(1))
        times = {kind: [] for kind in wrappers}
        outputs = {}
        for _ in range(repeats):
            for kind, wrapper in wrappers.items():
                started = time.perf_counter()
                outputs[kind] = _step(wrapper, weights, inputs)
                times[kind].append(time.perf_counter() - started)
        worst = max(
            (g - s).abs().max().item()
            for g, s in zip(outputs["grouped"], outputs["stock"], strict=True)
        )
        stock, grouped = (statistics.median(times[k]) * 1000 for k in ("stock", "grouped"))
        rows.append(
            {
                "case": case,
                "stock_ms": stock,
                "grouped_ms": grouped,
                "speedup": stock / grouped,
                "max_abs_difference": worst,
            }
        )
        print(f"  {case}: stock {stock:.2f} ms, grouped {grouped:.2f} ms ({stock / grouped:.1f}x)")
    return rows


def _plot(result: dict, ax) -> None:
    rows = result["rows"]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["stock_ms"] for r in rows], 0.4, label="vLLM-CPU stock ops")
    ax.bar([i + 0.2 for i in x], [r["grouped_ms"] for r in rows], 0.4, label="grouped ops")
    for i, r in zip(x, rows, strict=True):
        ax.annotate(f"{r['speedup']:.1f}x", (i + 0.2, r["grouped_ms"]), ha="center", va="bottom")
    ax.set_xticks(list(x), [r["case"] for r in rows])
    ax.set_ylabel("LoRA ops per model step (ms, median)")
    ax.set_yscale("log")
    ax.set_title(f"LoRA ops of SmolLM2-135M, r={RANK}, fp32, {result['threads']} threads")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "repeats": args.repeats, "rows": measure(args.repeats)}
    result["bars"] = {r["case"]: r["speedup"] for r in result["rows"]}
    write_report("lora_ops", result, plot=_plot)
