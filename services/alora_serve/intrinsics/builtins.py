"""The built-in intrinsic definitions: io.yaml files in ``builtin/`` that any adapter
following them can use (an adapter directory's own io.yaml takes precedence)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alora_serve.intrinsics.io_config import IOConfig, load_io_config

BUILTIN_DIR = Path(__file__).with_name("builtin")
# Intrinsics that judge a response against documents, beyond those that tag documents.
NEEDS_DOCUMENTS = frozenset({"citations", "hallucination_detection"})


def builtin_names() -> list[str]:
    return list(_builtin_stems())


@cache
def _builtin_stems() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml")))


@cache
def builtin_config(name: str) -> IOConfig:
    return load_io_config(BUILTIN_DIR / f"{name}.yaml")


def builtin_description(name: str) -> str:
    """The definition's first comment line."""
    first = (BUILTIN_DIR / f"{name}.yaml").read_text().splitlines()[0]
    return first.removeprefix("#").strip()
