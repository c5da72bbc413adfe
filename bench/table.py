"""Print a benchmark's JSON result as the markdown table used in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alora_serve.loadtest.samples import REFUSED


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
        "| intrinsics | k | one composed call | k separate calls | k calls, full recompute |",
        "|---|---|---|---|---|",
    ]
    for set_name, data in result["sets"].items():
        for row in data["rows"]:
            recomputed = f"{row['recomputed_s']:.2f} s" if "recomputed_s" in row else "-"
            lines.append(
                f"| {set_name} | {row['k']} | {row['composed_s']:.2f} s "
                f"| {row['separate_s']:.2f} s | {recomputed} |"
            )
    lines.append("")
    for set_name, bars in result["bars"].items():
        lines.append(
            f"- {set_name}: 5 in one call cost **{bars['composed_k_max_over_k1']:.2f}x** the "
            f"first intrinsic alone and {bars['composed_k_max_over_mean_single']:.2f}x the "
            f"mean single call of the same 5; separate calls cost "
            f"{bars['separate_over_composed_at_k_max']:.2f}x the composed call"
            + (
                f", full recompute {bars['recomputed_over_composed_at_k_max']:.0f}x"
                if "recomputed_over_composed_at_k_max" in bars
                else ""
            )
            + "."
        )
    return "\n".join(lines)


def kv_transfer_table(result: dict) -> str:
    memcpy = result["rows"][0]["mb_per_s"]
    lines = ["| path | MB/s | ms | vs memcpy |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(
            f"| {row['path']} | {row['mb_per_s']:.0f} | {row['median_s'] * 1e3:.1f} "
            f"| {row['mb_per_s'] / memcpy:.2f} |"
        )
    return "\n".join(lines)


def disaggregated_latency_table(result: dict) -> str:
    lines = ["| mode | client | in the worker |", "|---|---|---|"]
    for mode, row in result["modes"].items():
        lines.append(f"| {mode} | {row['median_s']:.2f} s | {row['worker_median_s']:.2f} s |")
    return "\n".join(lines)


def gateway_overhead_table(result: dict) -> str:
    lines = [
        "| path | p50 | p99 | added around the engine work, p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["paths"].items():
        lines.append(
            f"| {name} | {row['p50_s'] * 1e3:.0f} ms | {row['p99_s'] * 1e3:.0f} ms "
            f"| {row['added_p50_ms']:.1f} ms | {row['added_p99_ms']:.1f} ms |"
        )
    bars = result["bars"]
    lines.append("")
    lines.append(
        f"gRPC adds **{bars['grpc_p50_added_ms']:.1f} ms** at p50 over the in-process call: "
        f"**{bars['grpc_p50_overhead_fraction']:.1%}** of the engine's p50 (bar: at most "
        f"{bars['bar']:.0%}; {'met' if bars['met'] else 'not met'})."
    )
    return "\n".join(lines)


def main_job_table(result: dict) -> str:
    calls = result["first_vs_later"]
    bars = result["bars"]
    lines = [
        "| call after start | seconds |",
        "|---|---|",
        f"| first | {calls['calls_s'][0]:.2f} s |",
        f"| later (median of {len(calls['calls_s']) - 1}) | {calls['later_median_s']:.2f} s |",
        "",
        f"First call / later calls: **{bars['first_over_later']:.2f}x** (bar: at most "
        f"{bars['first_call_bar']:.0f}x). The job's own self-check calls, before it listens: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in result["self_check_s"].items())
        + ".",
        "",
        "| round | all seven, cold | all seven, warm | slowest alone | warm / slowest "
        "| subsets / slowest member (median, max) |",
        "|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(result["composition"]["rounds"]):
        slowest = max(row["alone_s"].values())
        subsets = row["subsets_over_slowest_member"]
        lines.append(
            f"| {i} | {row['all_seven_cold_s']:.2f} s | {row['all_seven_warm_s']:.2f} s "
            f"| {slowest:.2f} s | {row['warm_over_slowest']:.2f}x "
            f"| {sorted(subsets)[len(subsets) // 2]:.2f}x, {max(subsets):.2f}x |"
        )
    return "\n".join(lines)


def loadtest_table(result: dict) -> str:
    """One row per stage of a load test (bench/loadtests.py)."""
    lines = [
        "| stage | users | offered turns/s | intrinsic calls/s | intrinsic p95 "
        "| Generate p50 / p95 | refused (p99) | other errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, stage in enumerate(result["stages"], 1):
        offered = f"{stage['turns_per_s']:.2f}" if stage.get("turns_per_s") else "closed loop"
        generate = stage["by_type"].get("Generate/total", {})
        refused = stage["refusals"]
        others = {k: v for k, v in stage["errors_by_code"].items() if k != REFUSED}
        lines.append(
            f"| {i} | {stage['users']} | {offered} | {stage['intrinsic_calls_per_s']:.3f} "
            f"| {_seconds(stage['intrinsic_p95_s'])} "
            f"| {_seconds(generate.get('p50_s'))} / {_seconds(generate.get('p95_s'))} "
            f"| {refused['calls']} ({_seconds(refused['p99_s'])}) | {others or 0} |"
        )
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


TABLES = {
    "loadtest": loadtest_table,
    "main_job": main_job_table,
    "gateway_overhead": gateway_overhead_table,
    "alora_latency": alora_latency_table,
    "intrinsics_composition": intrinsics_composition_table,
    "kv_transfer": kv_transfer_table,
    "disaggregated_latency": disaggregated_latency_table,
}

if __name__ == "__main__":
    path = Path(sys.argv[1])
    result = json.loads(path.read_text())
    print(TABLES[result["benchmark"]](result))
