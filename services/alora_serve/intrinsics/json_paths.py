"""Paths into JSON values, as io.yaml's ``input_path`` names them.

A path is a sequence of dict keys and list indices; in a pattern, ``None`` matches any
single key or index. The empty pattern matches the root.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

Path = tuple[Any, ...]


def all_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path in ``value``, parents before children, in document order."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from all_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from all_paths(child, (*prefix, index))


def matches(pattern: Sequence[Any], path: Path) -> bool:
    return len(pattern) == len(path) and all(
        p is None or p == step for p, step in zip(pattern, path, strict=True)
    )


def matching_paths(value: Any, pattern: Sequence[Any]) -> list[Path]:
    return [path for path in all_paths(value) if matches(pattern, path)]


def get_path(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def replace_at(value: Any, path: Path, new: Any) -> Any:
    """``value`` with the node at ``path`` replaced (``value`` itself if path is empty)."""
    if not path:
        return new
    get_path(value, path[:-1])[path[-1]] = new
    return value
