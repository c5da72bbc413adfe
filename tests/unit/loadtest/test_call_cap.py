"""The run's call cap ends the run once. In a process of its own: importing the Locust
user patches gRPC (and Locust, the whole process) for gevent."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json
from types import SimpleNamespace
from alora_serve.loadtest import locust_user

class Runner:
    quits = 0

    def quit(self):
        Runner.quits += 1

environment = SimpleNamespace(parsed_options=SimpleNamespace(max_calls=3), runner=Runner())
for _ in range(6):  # the cap reached at the third call; three more finish meanwhile
    locust_user._keep("Generate/total", 5.0, None, context={"environment": environment})
print(json.dumps({"quits": Runner.quits, "kept": len(locust_user.RECORDED.kept)}))
"""


def test_reaching_the_call_cap_ends_the_run_once_and_keeps_later_calls() -> None:
    """Found by review: every call finishing after the cap called ``runner.quit()``
    again."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"quits": 1, "kept": 6}
