"""A run's plot over time: each call's latency, calls finished and failed a second, and
what the server said meanwhile (replicas and queues per deployment, memory of its
processes), with the stages marked."""

from __future__ import annotations

from pathlib import Path

from alora_serve.loadtest.profiles import stage_windows
from alora_serve.loadtest.samples import Sample

BIN_S = 10.0


def plot(
    kept: list[Sample], stages: list[dict], watched: tuple[list[dict], list[dict]], path: Path
) -> None:
    """``stages``: the plan the run followed; ``watched``: the metrics and memory records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not kept:
        return
    metrics, memory = watched
    begin = min(s.started_at for s in kept)
    figure, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    _latency(axes[0], kept, begin)
    _calls(axes[1], kept, begin)
    _deployments(axes[2], metrics, begin)
    _memory(axes[3], memory, begin)
    for ax in axes:
        _mark_stages(ax, stages)
    axes[-1].set_xlabel("seconds into the run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency(ax, kept: list[Sample], begin: float) -> None:
    for name in sorted({s.name for s in kept}):
        ok = [s for s in kept if s.name == name and s.code == "OK"]
        ax.plot([s.started_at - begin for s in ok], [s.seconds for s in ok], ".", label=name, ms=3)
    failed = [s for s in kept if s.code != "OK"]
    if failed:
        t, seconds = [s.started_at - begin for s in failed], [s.seconds for s in failed]
        ax.plot(t, seconds, "x", color="black", label="failed or refused", ms=4)
    ax.set_ylabel("seconds (each call)")
    ax.legend(fontsize=7)


def _calls(ax, kept: list[Sample], begin: float) -> None:
    """Calls finished a second (10 s bins), succeeded and failed stacked."""
    ends = max(s.started_at + s.seconds for s in kept) - begin
    bins = [i * BIN_S for i in range(int(ends // BIN_S) + 2)]
    ok = [s.started_at + s.seconds - begin for s in kept if s.code == "OK"]
    failed = [s.started_at + s.seconds - begin for s in kept if s.code != "OK"]
    weights = [[1 / BIN_S] * len(ok), [1 / BIN_S] * len(failed)]
    ax.hist([ok, failed], bins=bins, weights=weights, stacked=True, label=["OK", "failed"])
    ax.set_ylabel("calls finished / s")
    ax.legend(fontsize=7)


def _deployments(ax, metrics: list[dict], begin: float) -> None:
    """Healthy replicas (solid) and calls waiting or running (dotted) per deployment."""
    records = [r for r in metrics if "error" not in r]
    deployments = sorted({d for r in records for d in r.get("replicas", {})})
    for deployment in deployments:
        t = [r["t"] - begin for r in records]
        replicas = [r.get("replicas", {}).get(deployment, 0) for r in records]
        load = [
            r.get("queued", {}).get(deployment, 0) + r.get("processing", {}).get(deployment, 0)
            for r in records
        ]
        (line,) = ax.plot(t, replicas, "-", label=f"{deployment} replicas")
        ax.plot(t, load, ":", color=line.get_color(), label=f"{deployment} queued+running")
    ax.set_ylabel("replicas / calls")
    if deployments:
        ax.legend(fontsize=6, ncol=2)


def _memory(ax, memory: list[dict], begin: float) -> None:
    records = [r for r in memory if "error" not in r]
    t = [r["t"] - begin for r in records]
    total = [sum(v for k, v in r.items() if k != "t") / 2**30 for r in records]
    ax.plot(t, total, "-", label="all topology processes (shared pages counted in each)")
    ax.set_ylabel("RSS, GiB")
    ax.legend(fontsize=7)


def _mark_stages(ax, stages: list[dict]) -> None:
    """A line where each stage begins, named by its users (and offered turns a second)."""
    for stage, begin, _ in stage_windows(stages):
        ax.axvline(begin, color="grey", lw=0.6, ls="--")
        if ax.get_subplotspec().is_first_row():
            rate = f", {stage['turns_per_s']:.2f}/s" if stage.get("turns_per_s") else ""
            ax.annotate(
                f"{stage['users']} users{rate}",
                (begin, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                va="bottom",
            )
