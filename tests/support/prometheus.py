"""A real Prometheus server (Debian's ``prometheus``) on loopback, scraping given targets
every second, queried through its HTTP API."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.network import free_port
from tests.support.processes import stop_tree

SCRAPE_INTERVAL_S = 1


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict]:
        """The instant vector ``promql`` evaluates to now."""
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
        body = reply.json()
        assert body.get("status") == "success", (promql, body)
        return body["data"]["result"]

    def value(self, promql: str) -> float:
        """The one value of a scalar-like query (0 when the vector is empty)."""
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else 0.0

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[dict]:
        params = {"query": promql, "start": start, "end": end, "step": step_s}
        reply = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=60)
        body = reply.json()
        assert body.get("status") == "success", (promql, body)
        return body["data"]["result"]

    def names(self) -> set[str]:
        """Every metric name scraped so far."""
        reply = httpx.get(f"{self.url}/api/v1/label/__name__/values", timeout=30)
        return set(reply.json()["data"])

    def wait_for(self, promql: str, at_least: float, timeout_s: float) -> float:
        """``promql``'s value once it reaches ``at_least`` (Ray and Prometheus publish
        and scrape every few seconds)."""
        deadline = time.monotonic() + timeout_s
        while (value := self.value(promql)) < at_least:
            assert time.monotonic() < deadline, f"{promql} stayed at {value} < {at_least}"
            time.sleep(1)
        return value


REQUIRED = "ALORA_REQUIRE_PROMETHEUS"  # set (CI): a missing Prometheus fails, not skips


def missing(tool: str) -> None:
    """Skip the test for want of ``tool``, or fail it where Prometheus is required."""
    message = f"{tool} is not on PATH; install Debian's prometheus package"
    if os.environ.get(REQUIRED, "") not in ("", "0"):
        pytest.fail(f"{message} (required here: {REQUIRED} is set)")
    pytest.skip(f"{message} to run this test")


def require_server() -> None:
    if shutil.which("prometheus") is None:
        missing("prometheus")


@contextlib.contextmanager
def running(targets: list[str], workdir: Path, rules: list[Path] = ()) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (host:port) every second, with ``rules`` loaded."""
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [{"job_name": "alora-serve", "static_configs": [{"targets": targets}]}],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("w"),
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server, process)
        yield server
    finally:
        stop_tree(process)


def _wait_ready(server: Prometheus, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "prometheus exited; see prometheus.log"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError("prometheus did not become ready")
