"""The Prometheus rule file is valid and its unit tests pass (promtool, Debian's
``prometheus`` package). Without promtool the tests skip, except in CI (``CI`` set) or
with ``ALORA_REQUIRE_PROMTOOL`` set, where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "observability" / "rules.yml"
RULES_TEST = REPO / "deploy" / "observability" / "rules_test.yml"
REQUIRED_BY = ("CI", "ALORA_REQUIRE_PROMTOOL")
UNSET = {"", "0", "false", "no"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    message = (
        "promtool is not on PATH; install Debian's prometheus package (apt-get install prometheus)"
    )
    if any(os.environ.get(name, "").lower() not in UNSET for name in REQUIRED_BY):
        pytest.fail(f"{message}; it is required here ({' or '.join(REQUIRED_BY)} is set)")
    pytest.skip(f"{message} to run these tests (required when CI or ALORA_REQUIRE_PROMTOOL is set)")


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
