"""Filesystem helpers: directories that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_directory(dest: Path) -> Iterator[Path]:
    """Yield an empty scratch directory that replaces ``dest`` only if the block succeeds.

    The scratch directory is a sibling of ``dest`` (same filesystem, so the final rename is
    atomic). An exception, or a killed process, never leaves a half-written ``dest``; stale
    scratch directories of killed runs are removed by the next run.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        _remove_stale_partials(dest)
        scratch = dest.parent / f".{dest.name}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        try:
            yield scratch
            if dest.exists():
                retired = dest.parent / f".{dest.name}{PARTIAL_MARK}old-{uuid.uuid4().hex[:8]}"
                os.replace(dest, retired)
                shutil.rmtree(retired)
            os.replace(scratch, dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _remove_stale_partials(dest: Path) -> None:
    # Safe: we hold dest's lock, so no other process is writing a scratch dir for it.
    for stale in dest.parent.glob(f".{dest.name}{PARTIAL_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)
