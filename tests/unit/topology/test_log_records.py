"""Ray's driver keeps the package's structured records whole instead of folding those of
different replicas into one "[repeated Nx across cluster]" line."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
from alora_serve.topology.local_ray import keep_log_records_whole
keep_log_records_whole()
from ray._private.ray_logging import stderr_deduplicator as dedup
line = '{"time": "t", "message": "intrinsics run", "request_id": "%s", "seconds": %s}'
batches = [
    {"ip": "127.0.0.1", "pid": pid, "lines": [line % (request, seconds)]}
    for pid, request, seconds in ((1, "a1", 0.1), (2, "b2", 0.2), (3, "c3", 0.3))
]
batches.append({"ip": "127.0.0.1", "pid": 4, "lines": ["INFO worker 4 started"]})
batches.append({"ip": "127.0.0.1", "pid": 5, "lines": ["INFO worker 5 started"]})
print(sum(len(b["lines"]) for batch in batches for b in dedup.deduplicate(batch)))
"""


def test_structured_records_are_never_folded_other_lines_still_are() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == 4  # 3 records, 1 of 2 others
