"""The embedded default's adapter library: the intrinsics trained for the embedded model
that ship in this package (``trained/<intrinsic>/<model>/alora``, with how each was made
in docs/intrinsics-quality.md), and seeded stand-ins for the rest."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from alora_serve.fsutil import atomic_directory
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import ModelCheckpoint

TRAINED_DIR = Path(__file__).with_name("trained")
KIND = "alora"


def trained_adapter(name: str, model_name: str, trained_dir: Path = TRAINED_DIR) -> Path | None:
    path = trained_dir / name / model_name / KIND
    return path if path.is_dir() else None


def shipped_intrinsics(model_name: str, trained_dir: Path = TRAINED_DIR) -> list[str]:
    """The intrinsics with a trained adapter for the model in the package."""
    return sorted(
        p.name for p in trained_dir.iterdir() if trained_adapter(p.name, model_name, trained_dir)
    )


def embedded_library(
    checkpoint: ModelCheckpoint,
    root: Path,
    names: Sequence[str],
    trained_dir: Path = TRAINED_DIR,
) -> tuple[Path, list[str]]:
    """(the library at ``root``, the names served by trained adapters). A stand-in or an
    older copy where a trained adapter now ships is replaced."""
    trained = {n: p for n in names if (p := trained_adapter(n, checkpoint.name, trained_dir))}
    make_library(checkpoint, root, [n for n in names if n not in trained])
    for name, source in trained.items():
        target = root / name / checkpoint.name / KIND
        if _digest(target) != _digest(source):
            with atomic_directory(target) as scratch:
                shutil.copytree(source, scratch, dirs_exist_ok=True)
    return root, sorted(trained)


def _digest(directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()
