"""The documented load-test runs: a main job started as a user starts it, then
``alora-serve loadtest`` against it, as a user runs it; the run's summary and plot are
kept as ``bench/results/loadtest_<name>.{json,png,samples.jsonl}``.

    python -m bench.loadtests capacity                          # embedded default
    python -m bench.loadtests capacity --topology colocated
    python -m bench.loadtests overload --capacity 0.26          # offers 3x the capacity
    python -m bench.loadtests soak --capacity 0.26              # 70% of it for 30 minutes
    python -m bench.loadtests ramp --config services/alora_serve/topology/autoscaling.yaml
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

from alora_serve.loadtest.profiles import ProfileName
from alora_serve.loadtest.runner import failure
from bench.report import RESULTS
from tests.support.main_job import running_main_job


def main(profile: str, name: str, serve_args: list[str], load_args: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp, running_main_job(args=serve_args) as job:
        out = Path(tmp)
        print(f"Main job up ({' '.join(serve_args) or 'embedded default'}); {profile} ...")
        done = subprocess.run(
            [
                *(sys.executable, "-m", "alora_serve.cli", "loadtest", "--profile", profile),
                *("--target", job.grpc_target, "--metrics-url", job.metrics_url),
                *("--out", str(out), *load_args),
            ],
            check=False,
        )
        summary = _summary(out / "summary.json", done.returncode, job.log_path)
        if summary is None:
            return done.returncode or 1
        summary["benchmark"] = "loadtest"
        summary["server"] = {"serve_args": serve_args, "log": str(job.log_path)}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"loadtest_{name}.json").write_text(json.dumps(summary, indent=2))
        shutil.copy(out / "summary.png", RESULTS / f"loadtest_{name}.png")
        shutil.copy(out / "samples.jsonl", RESULTS / f"loadtest_{name}.samples.jsonl")
        print(f"Wrote {RESULTS}/loadtest_{name}.json, .png and .samples.jsonl")
    return done.returncode


def _summary(path: Path, returncode: int, server_log: Path) -> dict | None:
    """The run's summary when it measured something to keep (calls that failed
    unexpectedly are a result too); else None, once the failure is shown with the end of
    the main job's log."""
    summary = json.loads(path.read_text()) if path.exists() else None
    why = "it wrote no summary" if summary is None else failure(summary)
    if why is None:
        if returncode:
            print(f"alora-serve loadtest exited with code {returncode}: unexpected call errors")
        return summary
    print(
        f"alora-serve loadtest failed (exit code {returncode}): {why}\n"
        f"The main job's log ends ({server_log}):\n{_tail(server_log)}",
        file=sys.stderr,
    )
    return None


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", choices=typing.get_args(ProfileName))
    parser.add_argument("--topology", choices=["colocated", "disaggregated"])
    parser.add_argument("--config", help="topology YAML (default: the embedded one)")
    parser.add_argument("--capacity", type=float, help="intrinsic calls/s capacity measured")
    parser.add_argument("--users", type=int, help="scale the profile to this many users")
    parser.add_argument("--run-time", type=int, help="scale the profile to these seconds")
    parser.add_argument("--name", help="results name (default: profile and topology)")
    args = parser.parse_args()
    serve_args = [*(["--topology", args.topology] if args.topology else [])]
    serve_args += ["--config", args.config] if args.config else []
    load_args = [*(["--users", str(args.users)] if args.users is not None else [])]
    load_args += ["--run-time", str(args.run_time)] if args.run_time is not None else []
    load_args += ["--capacity", str(args.capacity)] if args.capacity is not None else []
    name = args.name or "_".join([args.profile, args.topology or "disaggregated"])
    sys.exit(main(args.profile, name, serve_args, load_args))
