"""Print a benchmark's JSON result as the markdown table used in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def alora_latency_table(result: dict) -> str:
    lines = [
        "| conversation tokens | aLoRA, KV reused | LoRA, full recompute | speedup |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['prefix_tokens']} | {row['reused_s']:.2f} s | {row['recomputed_s']:.2f} s "
            f"| {row['speedup']:.1f}x |"
        )
    bars = result["bars"]
    lines.append("")
    lines.append(
        f"Speedup at 2k: **{bars['speedup_at_2k']:.1f}x**; reused latency growth "
        f"256 -> {result['rows'][-1]['prefix_tokens']}: "
        f"**{bars['reused_growth_first_to_last']:.2f}x**."
    )
    return "\n".join(lines)


def intrinsics_composition_table(result: dict) -> str:
    lines = [
        "| k intrinsics | one composed call | k separate calls | k calls, full recompute |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['k']} | {row['composed_s']:.2f} s | {row['separate_s']:.2f} s "
            f"| {row['recomputed_s']:.2f} s |"
        )
    bars = result["bars"]
    k_max = result["rows"][-1]["k"]
    lines.append("")
    lines.append(
        f"{k_max} intrinsics in one call cost **{bars['composed_k_max_over_k1']:.2f}x** the "
        f"first intrinsic alone and **{bars['composed_k_max_over_mean_single']:.2f}x** the "
        f"mean single call of the same {k_max}; separate calls cost "
        f"{bars['separate_over_composed_at_k_max']:.1f}x and "
        f"full recompute {bars['recomputed_over_composed_at_k_max']:.1f}x the composed call "
        f"({result['prompt_tokens']} prompt tokens)."
    )
    return "\n".join(lines)


TABLES = {
    "alora_latency": alora_latency_table,
    "intrinsics_composition": intrinsics_composition_table,
}

if __name__ == "__main__":
    path = Path(sys.argv[1])
    result = json.loads(path.read_text())
    print(TABLES[result["benchmark"]](result))
