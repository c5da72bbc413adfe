"""The main job as `make run` starts it: its first calls against later ones, and composed
calls against the same intrinsics alone.

python -m bench.main_job [--later-calls 9] [--rounds 3]

Starts `alora-serve serve` (the embedded default: the disaggregated topology, seeded
stand-in adapters), waits until it listens, then over its HTTP API:

- **first call vs later calls**: the first call after start (answerability and
  uncertainty, as in the README) and the calls after it, each on a fresh conversation of
  the same shape. Baseline: the median of the later calls of the same run.
- **composition**: per round, on a fresh two-turn conversation with one document, every
  built-in in one call (cold: its base KV computed by the call), then each built-in alone
  (base KV stored), then all seven in one call again (warm); and the 24 subsets of 2-3 of
  the multi-LoRA worker's intrinsics that mix ones with an instruction and ones without,
  each against its slowest member alone. Baseline: the slowest intrinsic alone.

Writes bench/results/main_job.json and .png.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import httpx

from alora_serve.intrinsics.builtins import builtin_names
from bench.report import write_report
from tests.support.builtin_calls import (
    LORA_WORKER,
    call_body,
    mixed_subsets,
    two_turn_conversation,
)
from tests.support.network import free_port
from tests.support.processes import stop_tree

README_CALL = ["answerability", "uncertainty"]


class MainJob:
    def __init__(self) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        self.console: list[str] = []
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "alora_serve.cli", "serve"),
                *("--port", str(self.port), "--grpc-port", str(self.grpc_port)),
                *("--metrics-port", str(free_port())),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_until_listening(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.console.append(line.rstrip())
            print(f"  | {line.rstrip()}", flush=True)
            if "Press Ctrl-C to stop." in line:
                return
        raise RuntimeError("the main job did not start:\n" + "\n".join(self.console))

    def call(self, names: list[str], request: dict) -> float:
        url = f"http://127.0.0.1:{self.port}/v1/intrinsics:run"
        started = time.perf_counter()
        response = httpx.post(url, json=call_body(names, request), timeout=600)
        seconds = time.perf_counter() - started
        response.raise_for_status()
        return seconds

    def stop(self) -> None:
        stop_tree(self.process)


def self_check_seconds(console: list[str]) -> dict[str, float]:
    """The job's own first calls (its self-check, before it listens)."""
    found = (re.search(r"Self-check: (\w+) -> .*, ([\d.]+) s\)", line) for line in console)
    return {m.group(1): float(m.group(2)) for m in found if m}


def first_vs_later(job: MainJob, later_calls: int) -> dict:
    seconds = [
        job.call(README_CALL, two_turn_conversation(f"first-{i}")) for i in range(1 + later_calls)
    ]
    print(f"first call {seconds[0]:.2f} s, later {', '.join(f'{s:.2f}' for s in seconds[1:])}")
    later = statistics.median(seconds[1:])
    return {"calls_s": seconds, "later_median_s": later, "first_over_later": seconds[0] / later}


def composition(job: MainJob, rounds: int) -> dict:
    subsets = mixed_subsets(LORA_WORKER)
    rows = []
    for r in range(rounds):
        conversation = two_turn_conversation(f"compose-{r}-{time.time_ns()}")
        cold = job.call(builtin_names(), conversation)
        alone = {name: job.call([name], conversation) for name in builtin_names()}
        warm = job.call(builtin_names(), conversation)
        subset_ratios = [job.call(s, conversation) / max(alone[n] for n in s) for s in subsets]
        slowest = max(alone.values())
        rows.append(
            {
                "alone_s": alone,
                "all_seven_cold_s": cold,
                "all_seven_warm_s": warm,
                "cold_over_slowest": cold / slowest,
                "warm_over_slowest": warm / slowest,
                "subsets_over_slowest_member": subset_ratios,
            }
        )
        print(
            f"round {r}: all seven cold {cold:.2f} s, warm {warm:.2f} s, slowest alone "
            f"{slowest:.2f} s ({max(alone, key=alone.get)}); subsets: median "
            f"{statistics.median(subset_ratios):.2f}x, max {max(subset_ratios):.2f}x their "
            "slowest member"
        )
    return {"subsets": subsets, "rounds": rows}


def plot(result: dict, ax) -> None:
    figure = ax.figure
    figure.clf()
    calls_ax, compose_ax = figure.subplots(1, 2)
    calls = result["first_vs_later"]["calls_s"]
    calls_ax.bar(
        range(1, len(calls) + 1), calls, color=["tab:red"] + ["tab:blue"] * (len(calls) - 1)
    )
    calls_ax.set_xlabel("call after start (fresh conversation each)")
    calls_ax.set_ylabel("seconds at the client")
    calls_ax.set_title("first call vs later calls")
    last = result["composition"]["rounds"][-1]
    names = list(last["alone_s"])
    compose_ax.barh(names, [last["alone_s"][n] for n in names], color="tab:blue", label="alone")
    compose_ax.barh(["all seven (warm)"], [last["all_seven_warm_s"]], color="tab:green")
    compose_ax.barh(["all seven (cold)"], [last["all_seven_cold_s"]], color="tab:orange")
    compose_ax.set_xlabel("seconds at the client (last round)")
    compose_ax.set_title("one composed call vs each alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--later-calls", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("Starting the main job (about 2 minutes) ...", flush=True)
    job = MainJob()
    try:
        job.wait_until_listening()
        calls = first_vs_later(job, args.later_calls)
        composed = composition(job, args.rounds)
    finally:
        job.stop()
    rounds = composed["rounds"]
    result = {
        "self_check_s": self_check_seconds(job.console),
        "first_vs_later": calls,
        "composition": composed,
        "bars": {
            "first_over_later": calls["first_over_later"],
            "first_call_bar": 2.0,
            "all_seven_warm_over_slowest_median": statistics.median(
                r["warm_over_slowest"] for r in rounds
            ),
            "all_seven_cold_over_slowest_median": statistics.median(
                r["cold_over_slowest"] for r in rounds
            ),
            "subsets_over_slowest_member_median": statistics.median(
                x for r in rounds for x in r["subsets_over_slowest_member"]
            ),
            "subsets_over_slowest_member_max": max(
                x for r in rounds for x in r["subsets_over_slowest_member"]
            ),
        },
    }
    write_report("main_job", result, plot)


if __name__ == "__main__":
    main()
