"""Benchmark output: a JSON file and a PNG plot per benchmark, under bench/results/."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_report(name: str, result: dict, plot: Callable[[dict, object], None]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    fig, ax = plt.subplots(figsize=(8, 5))
    plot(result, ax)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    print(f"Wrote {path} and {path.with_suffix('.png')}")
    print(json.dumps(result.get("bars", {}), indent=2))
    return path
