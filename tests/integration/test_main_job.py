"""`alora-serve serve` end to end: the command the README tells newcomers to run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.engine

START_TIMEOUT_S = 240


def _read_until(process: subprocess.Popen, pattern: str, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r}; output was:\n{''.join(seen[-40:])}")


def test_serve_answers_a_chat_and_stops_cleanly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "alora_serve.cli", "serve", "--port", "0", "--kv-cache-gib", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        check = _read_until(process, r"Self-check: .* -> '(.*)'", START_TIMEOUT_S)
        assert "Paris" in check.group(1)
        url = _read_until(process, r"listening on (http://\S+)", 30).group(1)

        chat = subprocess.run(
            [
                sys.executable,
                "-m",
                "alora_serve.cli",
                "chat",
                "--url",
                url,
                "What is the capital of France?",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert chat.returncode == 0, chat.stderr
        assert "Paris" in chat.stdout

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
