"""scripts/bootstrap.sh's failures: each says what failed and what to do (the first
`make run` on a fresh machine once ended in a bare `Error 1`). The successful fresh build
is what CI's `.ci/run` proves, in a clean clone with an empty environment root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BOOTSTRAP = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh"


def bootstrap(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BOOTSTRAP)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ALORA_ENV_ROOT": str(tmp_path / "envs"), **env},
    )


def assert_explained(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode != 0
    assert "[bootstrap] error: " in done.stderr and "[bootstrap] fix: " in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert done.stdout == ""  # no environment path for make to use


def test_an_unknown_variant_is_explained(tmp_path) -> None:
    assert_explained(bootstrap(tmp_path, ALORA_VARIANT="tpu"), "ALORA_VARIANT", "cpu or gpu")


def test_a_python_that_is_not_3_11_is_explained(tmp_path) -> None:
    assert_explained(bootstrap(tmp_path, ALORA_PYTHON="/bin/false"), "Python 3.11", "ALORA_PYTHON")


def test_a_failed_install_is_explained(tmp_path) -> None:
    """No package index at all: the environment is created, then pip cannot install."""
    done = bootstrap(
        tmp_path,
        ALORA_PYTHON=sys.executable,
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS="",
    )
    assert_explained(done, "pip could not install", "PIP_EXTRA_INDEX_URL")
