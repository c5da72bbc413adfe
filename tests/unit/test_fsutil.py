from __future__ import annotations

from pathlib import Path

import pytest

from alora_serve.fsutil import PARTIAL_MARK, atomic_directory


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if PARTIAL_MARK in p.name]


def test_success_publishes_whole_directory(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with atomic_directory(dest) as scratch:
        (scratch / "a").write_text("1")
        assert not dest.exists()
    assert (dest / "a").read_text() == "1"
    assert _leftovers(tmp_path) == []


def test_failure_leaves_nothing_and_keeps_previous(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("kept")
    with pytest.raises(RuntimeError), atomic_directory(dest) as scratch:
        (scratch / "half").write_text("partial")
        raise RuntimeError("interrupted")
    assert [p.name for p in dest.iterdir()] == ["old"]
    assert _leftovers(tmp_path) == []


def test_replaces_existing_directory(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("x")
    with atomic_directory(dest) as scratch:
        (scratch / "new").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["new"]


def test_stale_scratch_of_killed_run_is_removed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    stale = tmp_path / f".out{PARTIAL_MARK}deadbeef"
    stale.mkdir()
    (stale / "junk").write_text("from a killed run")
    with atomic_directory(dest) as scratch:
        (scratch / "a").write_text("1")
    assert not stale.exists()
