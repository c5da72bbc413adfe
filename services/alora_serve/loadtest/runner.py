"""One bounded Locust run against a running server on this host: the command Locust is
given, its reports (CSV, HTML) and ours (raw samples, summary JSON, a plot)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alora_serve.loadtest.profiles import LoadProfile
from alora_serve.loadtest.samples import Samples, summarize

LOCUSTFILE = Path(__file__).with_name("locust_user.py")
STOP_TIMEOUT_S = 130  # users finish the call in flight (its deadline is 120 s)


@dataclass(frozen=True)
class LoadRun:
    target: str  # host:port of the gRPC gateway, on loopback
    profile: LoadProfile
    out: Path
    mtrag: Path
    token: str = ""
    tls_ca: str = ""
    verify_composed: bool = False

    def command(self) -> list[str]:
        profile, out = self.profile, self.out
        return [
            *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
            *("--host", self.target, "--users", str(profile.users)),
            *("--spawn-rate", str(profile.spawn_rate), "--run-time", f"{profile.run_time_s}s"),
            *("--stop-timeout", str(STOP_TIMEOUT_S), "--only-summary"),
            *("--csv", str(out / "locust"), "--html", str(out / "locust.html")),
            *("--mtrag", str(self.mtrag), "--max-calls", str(profile.max_calls)),
            *("--call-mix", profile.mix.model_dump_json(), "--token", self.token),
            *("--tls-ca", self.tls_ca, "--samples-out", str(out / "samples.jsonl")),
            *(["--verify-composed"] if self.verify_composed else []),
        ]


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
    """Runs Locust to its end (time, call cap) and returns the summary it wrote."""
    require_loopback(load.target)
    load.out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(load.command(), check=False)
    samples = Samples.read(load.out / "samples.jsonl")
    summary = {
        "target": load.target,
        "profile": load.profile.model_dump(),
        "locust_exit_code": done.returncode,
        **summarize(samples, load.profile.slo_intrinsic_p95_s),
    }
    (load.out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(samples, load.out / "summary.png")
    return summary


def _plot(samples: Samples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples.kept:
        return
    begin = min(s.started_at for s in samples.kept)
    figure, (latency, rate) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name in sorted({s.name for s in samples.kept}):
        of_type = [s for s in samples.kept if s.name == name and s.code == "OK"]
        latency.plot(
            [s.started_at - begin for s in of_type],
            [s.seconds for s in of_type],
            ".",
            label=name,
            markersize=3,
        )
    latency.set_ylabel("seconds (each call)")
    latency.legend(fontsize=7)
    ends = sorted(s.started_at + s.seconds - begin for s in samples.kept)
    failed = sorted(s.started_at + s.seconds - begin for s in samples.kept if s.code != "OK")
    rate.hist([ends, failed], bins=30, label=["finished", "failed"])
    rate.set_xlabel("seconds into the run")
    rate.set_ylabel("calls per bin")
    rate.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
