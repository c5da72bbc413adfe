"""The Grafana dashboard's panels from a real run, rendered with matplotlib.

Starts the main job as a user does (``alora-serve serve``: the embedded default, the
disaggregated topology), and Debian's real Prometheus scraping it every second with
deploy/observability/rules.yml loaded. Drives a few minutes of traffic through the public
gRPC API with the SDK, from concurrent callers: single intrinsic calls on real MTRAG
conversations (new ones, and repeats on the same one: KV reuse), composed calls of
several built-ins, base-model ``generate`` streams, and a few bad calls (documents
missing, an unknown intrinsic, a missing argument, a conversation too long). Then every
panel's PromQL (``deploy.observability.dashboard``, Grafana's variables substituted:
``$__rate_interval`` -> 1m, ``$intrinsic`` -> ``.*``, i.e. All) is queried over the
window with a 5 s step, and drawn one subplot per panel.

    python -m bench.dashboard_snapshot [--traffic-s 300]

Writes bench/results/dashboard_snapshot.json (every query's result) and
docs/observability-dashboard.png; ``--render-only`` draws the PNG again from the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from alora_serve.client import AloraClient
from alora_serve.client.errors import AloraError
from alora_serve.intrinsics.builtins import builtin_names
from alora_serve.model import resolve_model
from bench.report import RESULTS
from deploy.observability.dashboard import build
from deploy.observability.promql import metric_names, recording_rules
from tests.support import prometheus
from tests.support.builtin_calls import ARGUMENTS
from tests.support.conversations import client_inputs, rag_request
from tests.support.main_job import running_main_job

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "observability" / "rules.yml"
PNG = ROOT / "docs" / "observability-dashboard.png"
OUT = RESULTS / "dashboard_snapshot.json"
VARIABLES = {r"\$\{?__rate_interval\}?": "1m", r"\$\{?intrinsic\}?": ".*"}
STEP_S = 5
BEFORE_S = 60  # idle time shown before the traffic
SETTLE_S = 45  # replicas publish every 5 s, Ray exports every 10 s: let the last land
CONVERSATIONS = 10
TIMEOUT_S = 120
COLUMNS = 4


class Traffic:
    """Callers of the public API until a deadline; what they did, by kind and outcome."""

    def __init__(self, target: str, pool: list, seconds: float) -> None:
        self.target, self.pool = target, pool
        self.deadline = time.monotonic() + seconds
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._tags = itertools.count()

    def conversation(self, pick: random.Random, new: bool):
        """A pool conversation; ``new``: with a tag no cache holds (a new conversation)."""
        messages, documents = self.pool[pick.randrange(len(self.pool))]
        if new:
            first, *rest = documents
            tagged = {**first, "text": f"[call {next(self._tags)}] {first['text']}"}
            documents = [tagged, *rest]
        return messages, documents

    def call(self, kind: str, fn, *args) -> None:
        try:
            fn(*args)
            outcome = "OK"
        except AloraError as e:
            outcome = e.code.name
        with self._lock:
            self.counts[f"{kind} {outcome}"] += 1

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def singles(self, seed: int) -> None:
        """A new conversation, one intrinsic, then more on the same one (reused KV)."""
        pick = random.Random(seed)
        with AloraClient(self.target, timeout_s=TIMEOUT_S) as client:
            while self.running():
                conversation = self.conversation(pick, new=True)
                for name in pick.sample(builtin_names(), 3):
                    args = ARGUMENTS.get(name)
                    self.call("single", client.run_intrinsic, name, *conversation, args)

    def composed(self, seed: int) -> None:
        """2-4 built-ins in one call, on a new or an already seen conversation."""
        pick = random.Random(seed)
        with AloraClient(self.target, timeout_s=TIMEOUT_S) as client:
            while self.running():
                names = pick.sample(builtin_names(), pick.randint(2, 4))
                arguments = {n: ARGUMENTS[n] for n in names if n in ARGUMENTS}
                conversation = self.conversation(pick, new=pick.random() < 0.5)
                self.call("composed", client.run_intrinsics, names, *conversation, arguments)

    def occasional(self, seed: int) -> None:
        """Base-model streams and bad calls, every few seconds."""
        pick = random.Random(seed)
        messages = self.pool[0][0]
        too_long = [{"doc_id": "1", "text": "lorem ipsum " * 4000}]
        bad = itertools.cycle(
            [
                ("bad: no documents", lambda c: c.run_intrinsic("citations", messages, [])),
                ("bad: unknown", lambda c: c.run_intrinsic("no_such_intrinsic", messages)),
                ("bad: no argument", lambda c: c.run_intrinsic("requirement_check", messages)),
                ("bad: too long", lambda c: c.run_intrinsic("answerability", messages, too_long)),
            ]
        )
        with AloraClient(self.target, timeout_s=TIMEOUT_S) as client:
            while self.running():
                question = pick.choice([m for m in messages if m[0] == "user"])
                self.call("generate", streamed, client, question)
                kind, fn = next(bad)
                self.call(kind, fn, client)
                time.sleep(pick.uniform(3, 8))

    def run(self) -> dict[str, int]:
        callers = [(self.singles, 1), (self.singles, 2), (self.composed, 3)]
        callers.append((self.occasional, 4))
        threads = [threading.Thread(target=fn, args=(seed,)) for fn, seed in callers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return dict(sorted(self.counts.items()))


def streamed(client: AloraClient, question: tuple[str, str]) -> str:
    """A base-model turn, read as it streams."""
    return "".join(chunk.text for chunk in client.generate([question], max_tokens=48))


def substituted(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = re.sub(variable, value, expr)
    return expr


def legend(form: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), form).strip()
    text = text or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")
    return f" {text}" if text.startswith("_") else text  # matplotlib hides labels "_..."


def query_panels(server: prometheus.Prometheus, start: float, end: float) -> list[dict]:
    panels = []
    for panel in build()["panels"]:
        if panel["type"] != "timeseries":
            continue
        targets = []
        for target in panel["targets"]:
            query = substituted(target["expr"])
            result = server.query_range(query, start, end, STEP_S)
            targets.append({"expr": target["expr"], "query": query, "result": result})
            targets[-1]["legend"] = target["legendFormat"]
        unit = panel["fieldConfig"]["defaults"]["unit"]
        panels.append({"title": panel["title"], "unit": unit, "targets": targets})
    return panels


def why_empty(panel: dict, scraped: set[str], rules: dict[str, str]) -> str | None:
    """None where the panel has a finite value; else what its queries found."""
    values = [
        float(v)
        for target in panel["targets"]
        for series in target["result"]
        for _, v in series["values"]
    ]
    if any(math.isfinite(v) for v in values):
        return None
    needed = set().union(*(metric_names(t["expr"], rules) for t in panel["targets"]))
    missing = sorted(needed - scraped)
    if missing:
        return f"never exported (no such event in the run): {', '.join(missing)}"
    if values:
        return "series exist, every value NaN: nothing to take a quantile or ratio of"
    return "its metrics were scraped, but the query returned no series"


# Grafana unit -> (factor, axis label)
UNITS = {
    "percentunit": (100, "%"),
    "bytes": (1 / 2**20, "MiB"),
    "Bps": (1 / 2**20, "MiB/s"),
    "reqps": (1, "calls/s"),
    "s": (1, "seconds"),
    "short": (1, ""),
}


def render(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels, window = result["panels"], result["window"]
    start, end, (began, ended) = window["start"], window["end"], window["traffic"]
    calls = sum(result["traffic"].values())
    note = f"{calls} calls in {ended - began:.0f} s from 4 callers (step {STEP_S} s, rate 1m)"
    rows = math.ceil(len(panels) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 4 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        factor, unit = UNITS.get(panel["unit"], (1, panel["unit"]))
        drawn = 0
        for target in panel["targets"]:
            for series in target["result"]:
                times = [(float(t) - start) / 60 for t, _ in series["values"]]
                values = [float(v) * factor for _, v in series["values"]]
                ax.plot(
                    times, values, linewidth=1.2, label=legend(target["legend"], series["metric"])
                )
                drawn += any(math.isfinite(v) for v in values)
        ax.axvspan((began - start) / 60, (ended - start) / 60, color="0.92", zorder=0)
        ax.set_xlim(0, (end - start) / 60)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if drawn:
            columns, size = (1, 7) if drawn <= 8 else (2, 6.5) if drawn <= 20 else (2, 5.5)
            ax.legend(fontsize=size, loc="upper left", ncol=columns, framealpha=0.6)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("minutes (grey: traffic)", fontsize=8)
    fig.suptitle(f"alora-serve dashboard, real run: {note}", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(PNG, dpi=100)
    plt.close(fig)


def main(traffic_s: float) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None).path)
    pool = [client_inputs(rag_request(tokenizer, 1024, skip=i)) for i in range(CONVERSATIONS)]
    with tempfile.TemporaryDirectory() as tmp, running_main_job() as job:
        print(f"Main job up; Prometheus scraping {job.metrics_address} ...", flush=True)
        with prometheus.running([job.metrics_address], Path(tmp), [RULES]) as server:
            start = time.time()
            time.sleep(BEFORE_S)
            print(f"Traffic for {traffic_s:.0f} s from 4 callers ...", flush=True)
            began = time.time()
            counts = Traffic(job.grpc_target, pool, traffic_s).run()
            ended = time.time()
            print(json.dumps(counts, indent=2), flush=True)
            time.sleep(SETTLE_S)
            end = time.time()
            panels = query_panels(server, start, end)
            scraped, rules = server.names(), recording_rules(RULES)
    empty = {p["title"]: why for p in panels if (why := why_empty(p, scraped, rules))}
    RESULTS.mkdir(exist_ok=True)
    window = {"start": start, "end": end, "step_s": STEP_S, "traffic": [began, ended]}
    result = {
        "benchmark": "dashboard_snapshot",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": window,
        "variables": VARIABLES,
        "traffic": counts,
        "empty_panels": empty,
        "panels": panels,
    }
    OUT.write_text(json.dumps(result))
    render(result)
    print(f"Wrote {PNG} and {OUT}")
    for title, why in empty.items():
        print(f"empty: {title}: {why}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic-s", type=float, default=300)
    parser.add_argument(
        "--render-only", action="store_true", help=f"only draw the PNG again from {OUT.name}"
    )
    args = parser.parse_args()
    if args.render_only:
        render(json.loads(OUT.read_text()))
    else:
        main(args.traffic_s)
