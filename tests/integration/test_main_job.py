"""`alora-serve serve` end to end: the command the README tells newcomers to run (the
disaggregated topology on Ray Serve, with the embedded model)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support.network import free_port

pytestmark = pytest.mark.engine

START_TIMEOUT_S = 480  # Ray, then three engines starting together on two cores


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


def test_serve_runs_intrinsics_and_chat_and_stops_cleanly() -> None:
    port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "alora_serve.cli", "serve"),
            *("--port", str(port), "--grpc-port", str(grpc_port)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        answerability = _read_until(
            process, r"Self-check: answerability -> (\{.*\}) \(", START_TIMEOUT_S
        )
        assert 0 <= json.loads(answerability.group(1))["answerability_likelihood"] <= 1
        check = _read_until(process, r"Self-check: chat -> '(.*)'", 120)
        assert "Paris" in check.group(1)
        listed = _read_until(process, r"Self-check: gRPC on (\S+) lists (.*)", 60)
        assert listed.group(1) == f"127.0.0.1:{grpc_port}" and "citations" in listed.group(2)
        url = _read_until(process, r"listening on (http://\S+)", 30).group(1)
        assert url == f"http://127.0.0.1:{port}"

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

        check_http_api(url)
        check_readme_grpc_example(f"127.0.0.1:{grpc_port}")

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def check_http_api(url: str) -> None:
    import httpx

    assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    bad_chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=30,
    )
    assert bad_chat.status_code == 422 and "stream" in bad_chat.text
    listed = httpx.get(f"{url}/v1/intrinsics", timeout=30).json()
    assert {"answerability", "citations", "requirement_check"} <= {i["name"] for i in listed}

    conversation = {"messages": [{"role": "user", "content": "Is the sky blue?"}]}
    call = {"intrinsics": ["answerability", "uncertainty"], "request": conversation}
    answered = httpx.post(f"{url}/v1/intrinsics:run", json=call, timeout=120)
    assert answered.status_code == 200, answered.text
    answerability, uncertainty = answered.json()
    assert 0 <= answerability["result"]["answerability_likelihood"] <= 1
    assert uncertainty["name"] == "uncertainty"

    unknown = httpx.post(
        f"{url}/v1/intrinsics:run", json={**call, "intrinsics": ["telepathy"]}, timeout=30
    )
    assert unknown.status_code == 404 and "telepathy" in unknown.json()["detail"]
    missing_documents = httpx.post(
        f"{url}/v1/intrinsics:run", json={**call, "intrinsics": ["citations"]}, timeout=30
    )
    assert missing_documents.status_code == 422
    assert "needs documents" in missing_documents.json()["detail"]


def check_readme_grpc_example(target: str) -> None:
    example = subprocess.run(
        [sys.executable, "-m", "alora_serve.examples.grpc_client", "--target", target],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert example.returncode == 0, example.stderr
    answerability = re.search(
        r"answerability: \{'answerability_likelihood': ([\d.]+)\}", example.stdout
    )
    assert answerability and 0 <= float(answerability.group(1)) <= 1, example.stdout
    certainty = re.search(r"uncertainty: \{'certainty': ([\d.]+)\}", example.stdout)
    assert certainty and 0 <= float(certainty.group(1)) <= 1, example.stdout
    assert example.stdout.split("assistant:")[-1].strip()  # the streamed answer
