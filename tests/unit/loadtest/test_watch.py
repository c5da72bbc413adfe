"""What a load test watches on the server's side: a real Prometheus endpoint
(prometheus_client's server on loopback) sampled into JSON lines, and process memory."""

from __future__ import annotations

import http.client
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from alora_serve.loadtest import watch

# A stand-in topology: a process titled as the main job starting one titled as the raylet,
# which listens on loopback and prints its port.
LISTENER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); sys.stdin.read()
"""
MAIN_JOB = """
import os, subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], os.environ["CHILD"]], check=False)
"""


@pytest.fixture
def endpoint():
    registry = CollectorRegistry()
    healthy = Gauge(
        "ray_serve_deployment_replica_healthy",
        "",
        ["deployment", "replica"],
        registry=registry,
    )
    healthy.labels("answerability", "a").set(1)
    healthy.labels("answerability", "b").set(1)
    healthy.labels("prefill", "c").set(1)
    Gauge("ray_alora_prefill_leases", "", ["role"], registry=registry).labels("prefill").set(3)
    Gauge("ray_something_else", "", registry=registry).set(7)
    usage = Gauge("ray_vllm_kv_cache_usage_perc", "", ["deployment", "replica"], registry=registry)
    usage.labels("answerability", "a").set(0.25)
    usage.labels("answerability", "b").set(0.75)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics", healthy
    server.shutdown()
    thread.join()


def test_a_scrape_sums_the_chosen_series_by_their_label(endpoint) -> None:
    url, _ = endpoint
    assert watch.scrape(url) == {
        "replicas": {"answerability": 2.0, "prefill": 1.0},
        "leases": {"": 3.0},
        "vllm_kv_cache_usage": {"answerability": 0.75},  # the fullest replica's
    }


def test_a_scrape_keeps_each_counter_by_its_full_label_set() -> None:
    registry = CollectorRegistry()
    computed = Counter(
        "ray_alora_intrinsic_prompt_tokens_computed", "", ["replica"], registry=registry
    )
    computed.labels("a").inc(5)
    computed.labels("b").inc(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        scraped = watch.scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        thread.join()
    assert scraped["prompt_tokens_computed"] == {"": 12.0}
    assert sorted(scraped[watch.COUNTER_SERIES]["prompt_tokens_computed"], key=str) == [
        [{"replica": "a"}, 5.0],
        [{"replica": "b"}, 7.0],
    ]


@pytest.mark.parametrize(
    "error", [ValueError("bad metric line"), http.client.IncompleteRead(b"")], ids=type
)
def test_sampling_goes_on_when_a_read_answers_badly(
    error: Exception, tmp_path: Path, caplog
) -> None:
    """Found by review: only OSError was caught, so an unparsable page (ValueError) or a
    broken answer (HTTPException) ended the sampling thread silently."""
    reads = itertools.chain([error, error], itertools.repeat(None))

    def read() -> dict:
        if (failed := next(reads)) is not None:
            raise failed
        return {"replicas": {"decode": 1.0}}

    path = tmp_path / "metrics.jsonl"
    with watch.sampling(path, read, every_s=0.02):
        time.sleep(0.2)
    records = watch.read_records(path)
    assert [("error" in r) for r in records[:3]] == [True, True, False]
    assert records[0]["error"].startswith(type(error).__name__)
    assert records[-1]["replicas"] == {"decode": 1.0}
    assert len([r for r in caplog.records if "a read failed" in r.getMessage()]) == 1


def test_sampling_writes_a_record_per_period_and_keeps_going_on_errors(
    endpoint, tmp_path: Path
) -> None:
    url, healthy = endpoint
    path = tmp_path / "metrics.jsonl"
    reads = iter([lambda: watch.scrape(url), lambda: watch.scrape("http://127.0.0.1:9/x")])

    def read() -> dict:
        return next(reads, lambda: watch.scrape(url))()

    with watch.sampling(path, read, every_s=0.05):
        time.sleep(0.3)
        healthy.labels("answerability", "b").set(0)  # scaled down
        time.sleep(0.3)
    records = watch.read_records(path)
    assert len(records) >= 5
    assert records[0]["replicas"]["answerability"] == 2.0
    assert "error" in records[1]  # nothing listens on port 9: recorded, sampling goes on
    assert records[-1]["replicas"]["answerability"] == 1.0
    assert all(a["t"] < b["t"] for a, b in itertools.pairwise(records))


def _counters(series: str, *replicas: tuple[dict, float]) -> dict:
    return {watch.COUNTER_SERIES: {series: [list(r) for r in replicas]}}


def test_counters_are_read_as_what_they_added_during_the_run() -> None:
    records = [
        {"t": 0.0, "error": "connection refused"},
        {"t": 5.0, **_counters("prompt_tokens_reused", ({}, 100.0))},
        {
            "t": 10.0,
            watch.COUNTER_SERIES: {
                "prompt_tokens_reused": [[{}, 900.0]],
                "rejected": [[{"reason": "OVERLOADED"}, 2.0]],
            },
        },
        {"t": 15.0, "error": "timed out"},
    ]
    added = watch.counted(records)
    assert added["prompt_tokens_reused"] == {"": 800.0}
    assert added["rejected"] == {"OVERLOADED": 2.0}  # a label first seen later counts whole
    assert watch.counted(records[:2]) == {}  # one answered sample: nothing to compare


def test_counters_of_a_replica_that_went_away_keep_what_it_added() -> None:
    """Found by review: the difference of sums across replicas fell by a replica's whole
    count when a scale-down took its series away."""
    a, b = {"replica": "a"}, {"replica": "b"}
    records = [
        {"t": 0.0, **_counters("prompt_tokens_computed", (a, 100.0), (b, 1000.0))},
        {"t": 5.0, **_counters("prompt_tokens_computed", (a, 150.0), (b, 1200.0))},
        {"t": 10.0, **_counters("prompt_tokens_computed", (a, 160.0))},  # b scaled down
        {"t": 15.0, **_counters("prompt_tokens_computed", (a, 5.0))},  # a restarted
    ]
    assert watch.counted(records)["prompt_tokens_computed"] == {"": 50 + 200 + 10 + 5}
    phases = [
        {"t": 0.0, **_counters("phase_seconds", ({**a, "phase": "prefill"}, 1.0))},
        {"t": 5.0, **_counters("phase_seconds", ({**b, "phase": "prefill"}, 2.0))},
    ]
    assert watch.counted(phases)["phase_seconds"] == {"prefill": 2.0}  # by phase, summed


def test_scale_ups_and_downs_are_found_in_the_samples() -> None:
    replicas = [1, 1, 2, 2, 1]
    records = [
        {"t": 100.0 + 5 * i, "replicas": {"decode": float(n)}} for i, n in enumerate(replicas)
    ]
    records.insert(2, {"t": 108.0, "error": "timed out"})
    assert watch.replica_changes(records, begin=100.0) == [
        {"t_s": 10.0, "deployment": "decode", "replicas": 2.0},
        {"t_s": 20.0, "deployment": "decode", "replicas": 1.0},
    ]


def test_memory_growth_compares_the_steady_start_with_the_end() -> None:
    mib = 2**20
    records = [
        {"t": float(t), "VLLM::Worker (1)": (100 + t) * mib, "raylet (2)": 50 * mib}
        for t in range(0, 100, 5)
    ]
    ended = [{"t": 100.0 + t, "raylet (2)": 50 * mib} for t in range(3)]  # the worker ended
    growth = watch.memory_growth(records + ended, settle_s=20)
    assert set(growth) == {"raylet (2)"}
    assert growth["raylet (2)"]["growth_mib"] == 0
    missed_once = watch.memory_growth(records + ended[:1], settle_s=20)  # a read missed it
    assert set(missed_once) == {"raylet (2)", "VLLM::Worker (1)"}
    growth = watch.memory_growth(records, settle_s=20)
    worker = growth["VLLM::Worker (1)"]
    assert worker["first_mib"] == 130 and worker["last_mib"] == 185  # medians of five
    assert worker["growth_mib"] == 55 and worker["max_mib"] == 195
    assert worker["samples"] == 16


def test_memory_growth_keeps_a_process_a_read_missed_now_and_then() -> None:
    """A busy process can be missing from a sample (the first steady one included); one
    seen in fewer than half the steady samples (a late or restarted replica) is left out."""
    mib = 2**20
    records = [
        {"t": float(t), "VLLM::Worker (1)": 100 * mib, "VLLM::Worker (2)": 80 * mib}
        for t in range(0, 100, 5)
    ]
    for missed in (4, 9):  # the first steady sample (t=20) and a later one
        del records[missed]["VLLM::Worker (1)"]
    for early in records[:12]:
        del early["VLLM::Worker (2)"]  # started late: 8 of the 16 steady samples
    records[11]["VLLM::Worker (2)"] = 80 * mib
    growth = watch.memory_growth(records, settle_s=20)
    assert growth["VLLM::Worker (1)"]["samples"] == 14
    assert growth["VLLM::Worker (2)"]["samples"] == 9
    del records[11]["VLLM::Worker (2)"]
    del records[12]["VLLM::Worker (2)"]
    assert set(watch.memory_growth(records, settle_s=20)) == {"VLLM::Worker (1)"}


@pytest.mark.parametrize(
    ("cmdline", "name"),
    [
        (["VLLM::EngineCore" + " " * 40], "VLLM::EngineCore"),
        (["ray::ServeReplica:alora:prefill"], "ray::ServeReplica:alora:prefill"),
        (["ray::ServeReplica:alora:prefill.lease"], "ray::ServeReplica:alora:prefill"),
        (["ray::ServeController.listen_for_change"], "ray::ServeController"),
        (["/env/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet", "--x"], "raylet"),
        (["/env/bin/python", "/env/bin/alora-serve", "serve"], "alora-serve serve"),
        (["/env/bin/python", "/env/bin/alora-serve", "loadtest"], None),
        (["/env/bin/python", "-m", "locust", "-f", "x.py"], None),
    ],
)
def test_topology_processes_are_known_by_their_titles(cmdline: list[str], name) -> None:
    assert watch._topology_process(cmdline) == name


def test_the_watched_processes_are_the_tree_serving_the_target_and_no_others() -> None:
    main_job = subprocess.Popen(
        [sys.executable, "-c", MAIN_JOB, LISTENER, "alora_serve.cli", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHILD": "raylet"},  # not on its own command line
    )
    # the same title on this host, serving nothing: a test session's engine, say
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "alora_serve.cli", "serve"],
        stdin=subprocess.PIPE,
    )
    try:
        port = int(main_job.stdout.readline())
        root = watch.serving_tree(port)
        assert root.pid == main_job.pid
        watched = watch.process_memory(root)
        raylet = root.children()[0].pid
        assert set(watched) == {f"alora_serve.cli serve ({main_job.pid})", f"raylet ({raylet})"}
        assert all(rss > 0 for rss in watched.values())
    finally:
        for process in (main_job, bystander):
            process.stdin.close()
            process.wait(timeout=10)
    with pytest.raises(ValueError, match=f"listens on port {port}"):
        watch.serving_tree(port)
