"""What the store owner asks of an engine, carried in a request's kv_transfer_params.

These are the only channel from the owner to the connector: plain ints in a dict, so they
survive vLLM's serialisation between processes unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

PARAMS_KEY = "alora_kv"


@dataclass(frozen=True)
class LoadOrder:
    """The base KV of prompt tokens [0, num_tokens) is in a store: block i in slots[i] of
    the arena at path ``arena`` (None: the engine's own store)."""

    num_tokens: int
    slots: tuple[int, ...]
    tags: tuple[int, ...]
    arena: str | None = None


@dataclass(frozen=True)
class SaveOrder:
    """Once the prompt is prefilled, copy prompt block blocks[j] into slots[j]. With a
    ``preload``, the prompt's first blocks come from the store instead of being computed
    (a conversation's next turn computes only its new tokens)."""

    blocks: tuple[int, ...]
    slots: tuple[int, ...]
    tags: tuple[int, ...]
    preload: LoadOrder | None = None


Order = LoadOrder | SaveOrder


def to_params(order: Order) -> dict[str, Any]:
    kind = "load" if isinstance(order, LoadOrder) else "save"
    return {PARAMS_KEY: {"kind": kind, **asdict(order)}}


def from_params(params: Mapping[str, Any] | None) -> Order | None:
    if not params or PARAMS_KEY not in params:
        return None
    fields = dict(params[PARAMS_KEY])
    kind = fields.pop("kind")
    if kind == "load":
        return LoadOrder(**_tuples(fields))
    preload = fields.pop("preload", None)
    return SaveOrder(**_tuples(fields), preload=LoadOrder(**_tuples(preload)) if preload else None)


def _tuples(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in fields.items()}
