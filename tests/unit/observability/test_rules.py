"""The Prometheus rule file is valid and its unit tests pass (promtool, Debian's
``prometheus`` package). Without promtool the tests skip, except where
``ALORA_REQUIRE_PROMETHEUS`` is set (CI), where they fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import prometheus

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "observability" / "rules.yml"
RULES_TEST = REPO / "deploy" / "observability" / "rules_test.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    prometheus.missing("promtool")
    raise AssertionError("unreachable")


def _run(*args: str) -> None:
    command = [_promtool(), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    output = f"{done.stdout}\n{done.stderr}".strip()
    print(output)
    assert done.returncode == 0, f"{' '.join(command[1:])} failed:\n{output}"


def test_rules_are_valid() -> None:
    _run("check", "rules", str(RULES.relative_to(REPO)))


def test_rules_unit_tests_pass() -> None:
    _run("test", "rules", str(RULES_TEST.relative_to(REPO)))
