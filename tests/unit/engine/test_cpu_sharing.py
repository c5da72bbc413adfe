"""How an engine's processes share the host's cores: waiting OpenMP threads sleep, and
the engine yields the CPU to the front door (each in a fresh process: niceness and the
environment are the process's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os
from alora_serve.engine.vllm_glue import share_the_cpu
before = os.nice(0)
share_the_cpu(NICENESS)
share_the_cpu(NICENESS)  # a second engine in the same process
print(json.dumps({"before": before, "after": os.nice(0), "wait": os.environ["OMP_WAIT_POLICY"]}))
"""


def _probe(niceness: int, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("NICENESS", str(niceness))],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )
    return json.loads(done.stdout)


def test_the_engine_yields_the_cpu_once_and_its_threads_sleep_while_waiting() -> None:
    seen = _probe(4, {"OMP_WAIT_POLICY": None})
    assert seen["after"] == min(19, seen["before"] + 4)  # once, not per engine
    assert seen["wait"] == "PASSIVE"


def test_an_explicit_choice_is_kept() -> None:
    seen = _probe(0, {"OMP_WAIT_POLICY": "ACTIVE"})
    assert seen["after"] == seen["before"] and seen["wait"] == "ACTIVE"
