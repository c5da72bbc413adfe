"""Stopping a command that starts a tree of processes (Ray, vLLM) without leaving any."""

from __future__ import annotations

import contextlib
import signal
import subprocess

import psutil


def stop_tree(process: subprocess.Popen, grace_s: float = 90) -> None:
    """SIGINT (the command's own clean stop), then SIGKILL for whatever of its process
    tree is still alive: a killed parent would leave engines of gigabytes orphaned."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
