"""Every call's exact latency, kept apart from Locust's stats (which round response times
to 10 ms steps above 100 ms), and the summary a run reports: throughput, p50/p95/p99 per
call type, errors by gRPC status, goodput."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alora_serve.loadtest.profiles import stage_windows


@dataclass(frozen=True)
class Sample:
    name: str  # call type, e.g. "RunIntrinsic/answerability", "Generate/first token"
    started_at: float  # seconds since the epoch
    seconds: float
    code: str  # gRPC status name, "OK" for success


class Samples:
    def __init__(self) -> None:
        self.kept: list[Sample] = []

    def add(self, sample: Sample) -> None:
        self.kept.append(sample)

    def write(self, path: Path) -> None:
        with path.open("w") as out:
            for sample in self.kept:
                out.write(json.dumps(asdict(sample)) + "\n")

    @staticmethod
    def read(path: Path) -> Samples:
        samples = Samples()
        with path.open() as lines:
            samples.kept = [Sample(**json.loads(line)) for line in lines if line.strip()]
        return samples


REFUSED = "RESOURCE_EXHAUSTED"  # back-pressure: the server had no room for the call


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def summarize(
    kept: list[Sample], slo_intrinsic_p95_s: float, window: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Per call type: count, errors, throughput and latency percentiles of its successes
    (and the slowest); errors by status; how fast refusals (RESOURCE_EXHAUSTED) came back;
    goodput: intrinsic calls a second that succeeded within the SLO.
    Rates are over ``window`` (begin, end) when given, else from the first call's start to
    the last one's end. No calls: the same figures, zero or None."""
    begin, end = window or _span(kept)
    duration = max(end - begin, 1e-9)
    by_type: dict[str, Any] = {}
    for name in sorted({s.name for s in kept}):
        of_type = [s for s in kept if s.name == name]
        ok = sorted(s.seconds for s in of_type if s.code == "OK")
        by_type[name] = {
            "calls": len(of_type),
            "errors": len(of_type) - len(ok),
            "per_s": len(of_type) / duration,
            **_latencies(ok),
        }
    intrinsic = _intrinsic(kept)
    good = [s for s in intrinsic if s.code == "OK" and s.seconds <= slo_intrinsic_p95_s]
    refused = sorted(s.seconds for s in kept if s.code == REFUSED)
    return {
        "calls": len(kept),
        "duration_s": end - begin,
        "per_s": len(kept) / duration,
        "by_type": by_type,
        "errors_by_code": dict(Counter(s.code for s in kept if s.code != "OK")),
        "refusals": {"calls": len(refused), **_latencies(refused)},
        "goodput": {
            "slo": f"intrinsic calls within {slo_intrinsic_p95_s:g} s",
            "per_s": len(good) / duration,
            "fraction": len(good) / len(intrinsic) if intrinsic else None,
        },
    }


def _span(kept: list[Sample]) -> tuple[float, float]:
    """From the first call's start to the last one's end; (0, 0) for none."""
    if not kept:
        return 0.0, 0.0
    return min(s.started_at for s in kept), max(s.started_at + s.seconds for s in kept)


def _latencies(seconds: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of sorted ``seconds`` (None when there are none)."""
    found = {f"p{q}_s": _percentile(seconds, q / 100) if seconds else None for q in (50, 95, 99)}
    return {**found, "max_s": seconds[-1] if seconds else None}


def _intrinsic(kept: list[Sample]) -> list[Sample]:
    return [s for s in kept if s.name.startswith("RunIntrinsic")]


def summarize_stages(
    kept: list[Sample], stages: list[dict], settle_s: float, slo_intrinsic_p95_s: float
) -> list[dict[str, Any]]:
    """One summary per stage of the plan ({"users", "duration_s", ...}, in order from the
    run's first call) of the calls started in it after its first ``settle_s`` seconds,
    with the intrinsic calls' p95 over all intrinsics. The stage's planned keys stay as
    planned; ``measured_s`` is the window its figures cover."""
    if not kept:
        return []
    first = min(s.started_at for s in kept)
    return [
        _stage_summary(kept, stage, (begin + settle_s, end), slo_intrinsic_p95_s)
        for stage, begin, end in stage_windows(stages, first)
    ]


def _stage_summary(
    kept: list[Sample], stage: dict, window: tuple[float, float], slo_intrinsic_p95_s: float
) -> dict[str, Any]:
    within = [s for s in kept if window[0] <= s.started_at < window[1]]
    ok = sorted(s.seconds for s in _intrinsic(within) if s.code == "OK")
    measured = summarize(within, slo_intrinsic_p95_s, window)
    return {
        **stage,
        "measured_s": measured.pop("duration_s"),
        "intrinsic_calls_per_s": len(_intrinsic(within)) / max(window[1] - window[0], 1e-9),
        "intrinsic_p95_s": _percentile(ok, 0.95) if ok else None,
        **measured,
    }


def capacity(stages: list[dict[str, Any]], slo_intrinsic_p95_s: float) -> dict[str, Any] | None:
    """Of the stages in order up to the first that failed (an error, or intrinsic p95 over
    the SLO), the busiest (most intrinsic calls a second); None when the first failed.
    A later stage that passes by luck after a failure does not count."""
    healthy = []
    for stage in stages:
        p95 = stage["intrinsic_p95_s"]
        if (
            not stage["calls"]
            or stage["errors_by_code"]
            or p95 is None
            or p95 > slo_intrinsic_p95_s
        ):
            break
        healthy.append(stage)
    if not healthy:
        return None
    best = max(healthy, key=lambda s: s["intrinsic_calls_per_s"])
    return {
        key: best[key] for key in ("users", "per_s", "intrinsic_calls_per_s", "intrinsic_p95_s")
    }
