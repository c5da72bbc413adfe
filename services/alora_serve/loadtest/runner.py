"""One bounded Locust run against a running server on this host: the command Locust is
given, its reports (CSV, HTML) and ours (raw samples, summary JSON, a plot)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from alora_serve.loadtest import METRICS_URL, watch
from alora_serve.loadtest.profiles import LoadProfile
from alora_serve.loadtest.report import plot
from alora_serve.loadtest.samples import Samples, capacity, summarize, summarize_stages

LOCUSTFILE = Path(__file__).with_name("locust_user.py")
STOP_TIMEOUT_S = 70  # users finish the call in flight (its deadline is 60 s)
SAMPLE_EVERY_S = 5.0  # memory and metrics (Ray publishes replicas' metrics every 5 s)
WATCH_AFTER_S = 30.0  # after the last call: leases released, pinned blocks freed, scaled down


@dataclass(frozen=True)
class LoadRun:
    target: str  # host:port of the gRPC gateway, on loopback
    profile: LoadProfile
    out: Path
    mtrag: Path
    token: str = ""
    tls_ca: str = ""
    verify_composed: bool = False
    metrics_url: str = METRICS_URL
    capacity_per_s: float | None = None  # for profiles that offer a share of it

    def stages(self) -> list[dict]:
        return self.profile.plan(self.capacity_per_s)

    def command(self) -> list[str]:
        profile, out = self.profile, self.out
        return [
            *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
            # the calls' statuses are judged from the samples (some profiles expect
            # refusals): Locust's own exit code is left to say whether Locust failed
            *("--exit-code-on-error", "0"),
            *("--host", self.target, "--spawn-rate", str(profile.spawn_rate)),
            *("--stages", json.dumps(self.stages())),
            *("--stop-timeout", str(STOP_TIMEOUT_S), "--only-summary"),
            *("--csv", str(out / "locust"), "--html", str(out / "locust.html")),
            *("--mtrag", str(self.mtrag), "--max-calls", str(profile.max_calls)),
            *("--call-mix", profile.mix.model_dump_json(), "--token", self.token),
            *("--tls-ca", self.tls_ca, "--samples-out", str(out / "samples.jsonl")),
            *(["--verify-composed"] if self.verify_composed else []),
        ]


def failure(summary: dict) -> str | None:
    """Why a run measured nothing to go by (Locust failed, or no call was made), if so;
    the calls' statuses are judged apart."""
    if summary["locust_exit_code"] != 0:
        return f"Locust exited with code {summary['locust_exit_code']} (its output above says why)"
    if summary["calls"] == 0:
        return "the run made no calls: is the server answering on the target?"
    return None


def require_loopback(target: str) -> None:
    """Load is only ever sent to this host: a target elsewhere is refused."""
    host = target.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"load tests run against this host only (loopback), not {target!r}")


def run(load: LoadRun) -> dict:
    """Runs Locust to its end (stages, call cap), watching the server's processes and
    metrics, and returns the summary it wrote."""
    require_loopback(load.target)
    require_loopback(urlsplit(load.metrics_url).netloc)
    load.out.mkdir(parents=True, exist_ok=True)
    profile, plan = load.profile, load.stages()  # a missing capacity fails here
    serving = watch.serving_tree(urlsplit(f"//{load.target}").port or 0)
    with (
        watch.sampling(
            load.out / "memory.jsonl", lambda: watch.process_memory(serving), SAMPLE_EVERY_S
        ),
        watch.sampling(
            load.out / "metrics.jsonl", lambda: watch.scrape(load.metrics_url), SAMPLE_EVERY_S
        ),
    ):
        done = subprocess.run(load.command(), check=False)
        time.sleep(WATCH_AFTER_S)
    written = load.out / "samples.jsonl"  # not when Locust failed before it started
    kept = Samples.read(written).kept if written.exists() else []
    begin = min((s.started_at for s in kept), default=0.0)  # the run's first call
    stages = summarize_stages(kept, plan, profile.settle_s, profile.slo_intrinsic_p95_s)
    metrics = watch.read_records(load.out / "metrics.jsonl")
    memory = watch.read_records(load.out / "memory.jsonl")
    summary = {
        "target": load.target,
        "profile": profile.model_dump(),
        "locust_exit_code": done.returncode,
        **summarize(kept, profile.slo_intrinsic_p95_s),
        "stages": stages,
        "capacity": capacity(stages, profile.slo_intrinsic_p95_s),
        "memory": watch.memory_growth(memory, profile.settle_s),
        "server_counted": watch.counted(metrics),
        "replica_changes": watch.replica_changes(metrics, begin),
        "metrics_at_end": metrics[-1] if metrics else None,
    }
    (load.out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(kept, plan, (metrics, memory), load.out / "summary.png")
    return summary
