"""The main job's console: concise progress on the terminal, everything else in a log file.

Ray, Serve and vLLM write hundreds of lines while a topology starts, from this process and
from every process Ray starts (which inherit its standard output and error, and whose logs
Ray forwards here). So the log file takes over file descriptors 1 and 2 for the whole job,
and progress lines go to a duplicate of the terminal kept aside (and to the log too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from alora_serve.paths import cache_root

KEEP_LOGS = 10  # the log directory holds the newest main-job logs only

Say = Callable[[str], None]


@contextlib.contextmanager
def main_job_console(verbose: bool, log_dir: Path | None = None) -> Iterator[Say]:
    """Yields ``say(line)``. Not verbose: all other output goes to a new log file, which
    the first line names; a failure is reported on the terminal with the log's path."""
    if verbose:
        yield lambda line: print(line, flush=True)
        return
    log_path = _new_log(log_dir or cache_root() / "logs")
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    saved_stderr = os.dup(2)
    with log_path.open("a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def say(line: str) -> None:
            terminal.write(line + "\n")
            log.write(line + "\n")

        say(f"Full logs: {log_path} (--verbose prints them here)")
        try:
            yield say
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt | SystemExit):
                say(f"alora-serve stopped on an error ({type(exc).__name__}); see {log_path}")
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(terminal.fileno(), 1)
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            terminal.close()


def _new_log(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(log_dir.glob("serve-*.log"))[: -(KEEP_LOGS - 1)]:
        old.unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return log_dir / f"serve-{stamp}-{os.getpid()}.log"
