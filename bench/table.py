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


TABLES = {"alora_latency": alora_latency_table}

if __name__ == "__main__":
    path = Path(sys.argv[1])
    result = json.loads(path.read_text())
    print(TABLES[result["benchmark"]](result))
