"""llama.cpp's ``llama-server``, the peer a user would run for aLoRA in GGUF: built from
the ``llama-cpp-python`` sdist on PyPI (which vendors llama.cpp) into a cache outside
the checkout, our PEFT checkpoint and adapter converted to GGUF with the converters it
vendors, and one server process per setting, called over its HTTP API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alora_serve.paths import cache_root

VERSION = "0.3.36"  # llama-cpp-python's; its vendor/llama.cpp is what gets built
CACHE = cache_root() / "peers" / f"llama-cpp-python-{VERSION}"
# The environment as the user started the benchmark: starting an engine sets OpenMP's
# wait policy for vLLM's processes (OMP_WAIT_POLICY=PASSIVE), which would slow the
# llama-server processes started after it 2.5x (its OpenMP threads sleeping between ops).
USER_ENV = dict(os.environ)


def _run(command: list[str], log: Path, **kwargs) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(
            f"{command[0]} failed (exit {done.returncode}); {log}:\n" + "\n".join(tail)
        )


def source() -> Path:
    """llama.cpp's tree from the sdist (downloaded once with pip)."""
    tree = CACHE / "src" / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if tree.exists():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "build.log"
    print(f"  downloading the llama-cpp-python {VERSION} sdist ...", flush=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"llama-cpp-python=={VERSION}",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(CACHE / "sdist"),
        ],
        log,
    )
    (archive,) = (CACHE / "sdist").glob("*.tar.gz")
    with tarfile.open(archive) as sdist:
        sdist.extractall(CACHE / "src", filter="data")
    return tree


def server_binary() -> Path:
    """``llama-server`` built for this CPU (native, OpenMP), reused once built."""
    binary = CACHE / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    tree, log = source(), CACHE / "build.log"
    jobs = str(os.cpu_count() or 2)
    print(f"  building llama-server (a few minutes on {jobs} cores; log: {log}) ...", flush=True)
    _run(
        [
            "cmake",
            "-S",
            str(tree),
            "-B",
            str(CACHE / "build"),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=ON",
        ],
        log,
    )
    _run(["cmake", "--build", str(CACHE / "build"), "--target", "llama-server", "-j", jobs], log)
    return binary


def _convert(script: str, source_dir: Path, gguf: Path, *options: str) -> Path:
    """``source_dir`` as an f32 GGUF by one of llama.cpp's converters (once)."""
    if not gguf.exists():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        tree = source()
        command = [sys.executable, str(tree / script), str(source_dir), *options]
        env = {**os.environ, "PYTHONPATH": str(tree / "gguf-py")}  # the gguf package it vendors
        partial = gguf.with_suffix(".partial")  # an interrupted conversion is never reused
        _run(
            [*command, "--outtype", "f32", "--outfile", str(partial)],
            gguf.parent / "convert.log",
            env=env,
        )
        partial.rename(gguf)
    return gguf


def convert_model(checkpoint: Path, out: Path) -> Path:
    """Our HF checkpoint as an f32 GGUF: the same weights vLLM and PEFT run."""
    # keyed by the checkpoint's identity (the embedded default's includes its version)
    name = f"{checkpoint.name}-{checkpoint.stat().st_mtime_ns}-f32.gguf"
    return _convert("convert_hf_to_gguf.py", checkpoint, out / name)


def convert_adapter(adapter: Path, checkpoint: Path, out: Path) -> Path:
    """A PEFT (a)LoRA adapter as a GGUF LoRA (its invocation tokens carried over)."""
    gguf = out / f"{adapter.name}-f32.gguf"
    return _convert("convert_lora_to_gguf.py", adapter, gguf, "--base", str(checkpoint))


@dataclass(frozen=True)
class Setting:
    """How the server runs: its KV cache type and flash attention."""

    kv_type: str  # f16 is llama.cpp's default
    flash_attention: bool

    @property
    def name(self) -> str:
        return f"llama-server {self.kv_type} KV, fa {'on' if self.flash_attention else 'off'}"


@dataclass(frozen=True)
class Completion:
    tokens: list[int]
    logprobs: list[float]  # of each chosen token
    prompt_computed: int  # prompt tokens the server computed (not from its cache)
    seconds: float  # at the client


class LlamaServer:
    """One ``llama-server`` process on loopback with the base model and one adapter."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def complete(self, prompt: list[int], new_tokens: int, adapter: bool) -> Completion:
        """Greedy ``new_tokens`` after ``prompt`` (token ids), reusing the server's cache of
        the longest matching prefix; the adapter on or off."""
        body = {
            "prompt": prompt,
            "n_predict": new_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "cache_prompt": True,
            "return_tokens": True,
            "n_probs": 1,
            "lora": [{"id": 0, "scale": 1.0 if adapter else 0.0}],
        }
        request = urllib.request.Request(
            f"{self.url}/completion",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            reply = json.loads(response.read())
        seconds = time.perf_counter() - started
        probabilities = reply.get("completion_probabilities", [])
        return Completion(
            tokens=reply["tokens"],
            logprobs=[p["logprob"] for p in probabilities],
            prompt_computed=reply["timings"]["prompt_n"],
            seconds=seconds,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(model: Path, adapter: Path, setting: Setting, context: int, threads: int, log: Path):
    """A ``llama-server`` for ``setting`` until the block ends (one slot, loopback)."""
    port = _free_port()
    command = [
        str(server_binary()),
        "-m",
        str(model),
        "--lora",
        str(adapter),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        str(context),
        "-np",
        "1",
        "-t",
        str(threads),
        "-tb",
        str(threads),
        "--cache-type-k",
        setting.kv_type,
        "--cache-type-v",
        setting.kv_type,
        "-fa",
        "on" if setting.flash_attention else "off",
        "--no-warmup",
        "--lora-init-without-apply",
    ]
    with log.open("a") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=USER_ENV)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process, log)
        yield LlamaServer(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError("llama-server exited at start:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"llama-server not healthy after {timeout_s:.0f} s; see {log}")
