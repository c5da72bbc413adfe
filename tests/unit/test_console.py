"""The main job's console, in a child process: its file descriptors are taken over."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from alora_serve.console import KEEP_LOGS

JOB = textwrap.dedent(
    """
    import os, subprocess, sys
    from pathlib import Path
    from alora_serve.console import main_job_console

    with main_job_console(sys.argv[2] == "verbose", Path(sys.argv[1])) as say:
        say("stage one")
        print("library chatter")
        os.write(2, b"native stderr\\n")
        subprocess.run([sys.executable, "-c", "print('child process output')"])
        say("stage two")
        if sys.argv[3] == "fail":
            raise RuntimeError("engine exploded")
    print("after")
    """
)


def job(log_dir: Path, *options: str) -> subprocess.CompletedProcess:
    mode = "verbose" if "verbose" in options else "quiet"
    outcome = "fail" if "fail" in options else "ok"
    return subprocess.run(
        [sys.executable, "-c", JOB, str(log_dir), mode, outcome],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_progress_goes_to_the_terminal_and_everything_else_to_the_log(tmp_path) -> None:
    done = job(tmp_path)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Full logs: ") and "--verbose" in lines[0]
    assert lines[1:] == ["stage one", "stage two", "after"]
    assert done.stderr == ""
    log = Path(lines[0].split()[2])
    assert log.parent == tmp_path
    logged = log.read_text()
    for text in ("stage one", "library chatter", "native stderr", "child process output"):
        assert text in logged
    assert "after" not in logged  # the terminal is back once the job ends


def test_a_failure_says_so_on_the_terminal_and_names_the_log(tmp_path) -> None:
    done = job(tmp_path, "fail")
    assert done.returncode == 1
    log = done.stdout.splitlines()[0].split()[2]
    assert f"alora-serve stopped on an error (RuntimeError); see {log}" in done.stdout
    assert "engine exploded" in done.stderr  # the traceback, on the restored stderr


def test_verbose_prints_everything_here(tmp_path) -> None:
    done = job(tmp_path, "verbose")
    assert "library chatter" in done.stdout and "native stderr" in done.stderr
    assert "Full logs" not in done.stdout and not list(tmp_path.iterdir())


def test_the_log_directory_keeps_the_newest_logs_only(tmp_path) -> None:
    for i in range(KEEP_LOGS + 3):
        (tmp_path / f"serve-20200101-0000{i:02d}-1.log").write_text("old")
    job(tmp_path)
    logs = sorted(tmp_path.glob("serve-*.log"))
    assert len(logs) == KEEP_LOGS
    assert "stage one" in logs[-1].read_text()  # the new one is among them
