"""`alora-serve serve` started as a user starts it, in a subprocess, for a test module."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port
from tests.support.processes import stop_tree

START_TIMEOUT_S = 480  # Ray, then three engines starting together on two cores


@dataclass(frozen=True)
class MainJob:
    process: subprocess.Popen
    console: list[str]  # what it printed up to "Press Ctrl-C to stop."
    url: str
    grpc_target: str
    metrics_address: str  # host:port of its Prometheus endpoint

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    def console_match(self, pattern: str) -> re.Match:
        found = [m for line in self.console if (m := re.search(pattern, line))]
        assert found, f"no console line matches {pattern!r}:\n" + "\n".join(self.console)
        return found[0]

    @property
    def log_path(self) -> Path:
        return Path(self.console_match(r"^Full logs: (\S+)").group(1))


@contextlib.contextmanager
def running_main_job(
    env: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> Iterator[MainJob]:
    """``args``: more of ``alora-serve serve``'s options (e.g. ``--topology colocated``)."""
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "alora_serve.cli", "serve"),
            *("--port", str(port), "--grpc-port", str(grpc_port)),
            *("--metrics-port", str(metrics_port), *args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        console = _read_until(process, r"Press Ctrl-C to stop\.", START_TIMEOUT_S)
        yield MainJob(
            process,
            console,
            f"http://127.0.0.1:{port}",
            f"127.0.0.1:{grpc_port}",
            f"127.0.0.1:{metrics_port}",
        )
    finally:
        stop_tree(process)


def _read_until(process: subprocess.Popen, pattern: str, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r}; the console said:\n" + "\n".join(seen))
