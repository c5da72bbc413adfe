"""What a run watches on the server's side while Locust calls it: the memory (RSS) of
every process of the topology serving the target, and chosen series of its Prometheus
endpoint, sampled on a fixed period into JSON lines."""

from __future__ import annotations

import http.client
import json
import logging
import statistics
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

# Processes of a topology on this host: by the title Ray and vLLM give them, and the
# main job's own command line.
PROCESS_TITLES = ("ray::", "VLLM::")
PROCESS_COMMANDS = ("raylet", "gcs_server", "alora-serve serve", "alora_serve.cli serve")
# series -> (the scraped sample's name, the label it is summed by, "" for one total)
SERIES = {
    # the engines: requests running and waiting, KV cache use (the fullest replica's),
    # preemptions (a full KV cache makes vLLM recompute requests)
    "vllm_running": ("ray_vllm_num_requests_running", "deployment"),
    "vllm_waiting": ("ray_vllm_num_requests_waiting", "deployment"),
    "vllm_kv_cache_usage": ("ray_vllm_kv_cache_usage_perc", "deployment"),
    "vllm_preemptions": ("ray_vllm_num_preemptions_total", "deployment"),
    "replicas": ("ray_serve_deployment_replica_healthy", "deployment"),
    "target_replicas": ("ray_serve_autoscaling_target_replicas", "deployment"),
    "queued": ("ray_serve_deployment_queued_queries", "deployment"),
    "processing": ("ray_serve_replica_processing_queries", "deployment"),
    "gateway_in_flight": ("ray_alora_gateway_in_flight_calls", ""),
    "leases": ("ray_alora_prefill_leases", ""),
    "kv_store_pinned_bytes": ("ray_alora_kv_store_pinned_bytes", "role"),
    "kv_store_bytes": ("ray_alora_kv_store_bytes", "role"),
    # counters: a run reads what they added between its first and last sample
    "rejected": ("ray_alora_gateway_rejected_calls_total", "reason"),
    "prompt_tokens_reused": ("ray_alora_intrinsic_prompt_tokens_reused_total", ""),
    "prompt_tokens_computed": ("ray_alora_intrinsic_prompt_tokens_computed_total", ""),
    "phase_seconds": ("ray_alora_intrinsic_phase_seconds_sum", "phase"),
}
COUNTERS = (
    "rejected",
    "prompt_tokens_reused",
    "prompt_tokens_computed",
    "phase_seconds",
    "vllm_preemptions",
)
HIGHEST = ("vllm_kv_cache_usage",)  # a share: the highest of the replicas, not their sum
# A record's counters as scraped, each series by its full label set (a replica's own):
# {series: [[labels, number], ...]}, what ``counted`` diffs.
COUNTER_SERIES = "counter_series"
# What a failed read raises: the server not (yet) answering, or answering badly.
READ_ERRORS = (OSError, ValueError, http.client.HTTPException)
MIN_MEMORY_SAMPLES = 5  # a process sampled fewer times shows no trend
log = logging.getLogger(__name__)


def serving_tree(port: int) -> psutil.Process:
    """The topology serving on ``port`` here: from the process listening on it up through
    its topology ancestors (a Ray worker, the raylet, the main job) to the first of them,
    whose descendants are the topology's processes and no other's (a test session's own
    engine, another topology on the same host)."""
    listening = [
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    ]
    if not listening:
        raise ValueError(f"no process on this host listens on port {port}")
    root = psutil.Process(listening[0])
    while (parent := root.parent()) is not None and _topology_process(parent.cmdline()):
        root = parent
    return root


def process_memory(root: psutil.Process) -> dict:
    """RSS in bytes of ``root`` and its descendants now, by "name (pid)"."""
    rss = {}
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:  # the topology has stopped
        return rss
    for process in processes:
        try:
            cmdline = process.cmdline()
            name = _topology_process(cmdline) or process.name()
            rss[f"{name} ({process.pid})"] = process.memory_info().rss
        except psutil.Error:  # it ended between listing and reading
            continue
    return rss


def _topology_process(cmdline: list[str]) -> str | None:
    title = " ".join(" ".join(cmdline).split())  # process titles come padded with spaces
    if title.startswith(PROCESS_TITLES):
        # a Ray actor's title names the method it runs now ("ray::Actor.method"): the
        # process is named by its actor alone, so that its samples line up
        return title.split(".", 1)[0][:60]
    return next((command for command in PROCESS_COMMANDS if command in title), None)


def scrape(url: str) -> dict:
    """The chosen series now, summed by their label (or the highest, for shares):
    {series: {label value: number}}, and the counters by full label set
    (``COUNTER_SERIES``)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    wanted = {name: (series, label) for series, (name, label) in SERIES.items()}
    values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counters: dict[str, list] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                series, label = wanted[sample.name]
                key, by = sample.labels.get(label, "") if label else "", values[series]
                if series in HIGHEST:
                    by[key] = max(by.get(key, 0.0), sample.value)
                else:
                    by[key] += sample.value
                if series in COUNTERS:
                    counters[series].append([sample.labels, sample.value])
    summed = {series: dict(by) for series, by in values.items()}
    return {**summed, COUNTER_SERIES: dict(counters)} if counters else summed


@contextmanager
def sampling(path: Path, read: Callable[[], dict], every_s: float) -> Iterator[None]:
    """Writes ``{"t": seconds since the epoch, **read()}`` to ``path`` every ``every_s``
    seconds while the block runs; a failed read is written as its error (the first one
    logged too), and sampling goes on."""
    stop = threading.Event()

    def loop() -> None:
        failed = False
        with path.open("w") as out:
            while True:
                try:
                    record = {"t": time.time(), **read()}
                except READ_ERRORS as error:
                    record = {"t": time.time(), "error": f"{type(error).__name__}: {error}"}
                    if not failed:
                        log.warning("sampling %s: a read failed (%s)", path.name, record["error"])
                    failed = True
                out.write(json.dumps(record) + "\n")
                out.flush()
                if stop.wait(every_s):
                    return

    thread = threading.Thread(target=loop, name=f"sampling {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def counted(records: list[dict]) -> dict[str, dict[str, float]]:
    """What the server's counters added from the first answered sample to the last, by
    the label each series is summed by. Each series (one replica's) adds what it rose by
    from the value last seen, as Prometheus's ``increase`` reads it: a series first seen
    later counts whole, one that fell (restarted) counts from zero, and one gone with its
    replica keeps what it added until then."""
    answered = [r.get(COUNTER_SERIES, {}) for r in records if "error" not in r]
    if len(answered) < 2:
        return {}
    seen = _counter_values(answered[0])
    added: dict[str, dict[str, float]] = {series: defaultdict(float) for series in COUNTERS}
    for record in answered[1:]:
        for key, value in _counter_values(record).items():
            was = seen.get(key, 0.0)
            added[key[0]][key[1]] += value - was if value >= was else value
            seen[key] = value
    return {series: dict(by) for series, by in added.items()}


def _counter_values(record: dict) -> dict[tuple[str, str, tuple], float]:
    """A record's counters by (series, the value of the label it is summed by, the
    series' full label set)."""
    values = {}
    for series, scraped in record.items():
        label = SERIES[series][1]
        for labels, value in scraped:
            group = labels.get(label, "") if label else ""
            values[series, group, tuple(sorted(labels.items()))] = value
    return values


def replica_changes(records: list[dict], begin: float) -> list[dict]:
    """When a deployment's healthy replicas changed (seconds after ``begin``), after the
    first answered sample: scale-ups and scale-downs."""
    changes, last = [], None
    for record in (r for r in records if "replicas" in r):
        now = record["replicas"]
        if last is not None:
            for deployment in sorted(set(now) | set(last)):
                before, after = last.get(deployment, 0.0), now.get(deployment, 0.0)
                if before != after:
                    at = round(record["t"] - begin, 1)
                    changes.append({"t_s": at, "deployment": deployment, "replicas": after})
        last = now
    return changes


def memory_growth(records: list[dict], settle_s: float) -> dict[str, dict[str, float]]:
    """Per process alive at the end (in one of the last three steady samples) and sampled
    in at least half of them (a read may miss a busy process now and then): RSS after
    ``settle_s`` (median of its first five samples from then), at the end (median of its
    last five), the growth, and how many samples it had."""
    if not records:
        return {}
    begin = records[0]["t"] + settle_s
    steady = [r for r in records if r["t"] >= begin and "error" not in r]
    names = {name for record in steady for name in record} - {"t"}
    growth = {}
    for name in sorted(names):
        series = [r[name] for r in steady if name in r]
        ended = all(name not in record for record in steady[-3:])
        if ended or len(series) < max(MIN_MEMORY_SAMPLES, len(steady) / 2):
            continue
        first, last = statistics.median(series[:5]), statistics.median(series[-5:])
        growth[name] = {
            "first_mib": first / 2**20,
            "last_mib": last / 2**20,
            "max_mib": max(series) / 2**20,
            "growth_mib": (last - first) / 2**20,
            "samples": len(series),
        }
    return growth
