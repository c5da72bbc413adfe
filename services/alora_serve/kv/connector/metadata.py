"""Per-step orders from the connector's scheduler side to its worker side."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorMetadata


@dataclass(frozen=True)
class BlockCopy:
    block_id: int  # vLLM KV cache block
    slot: int  # store slot
    tag: int  # expected (load) or written (save) content tag of the slot


@dataclass(frozen=True)
class BlockLoad:
    """One request's load, applied whole or reported failed whole."""

    copies: list[BlockCopy]
    arena: str | None = None  # path of the arena holding the slots; None: the engine's own


@dataclass
class AloraConnectorMetadata(KVConnectorMetadata):
    loads: list[BlockLoad] = field(default_factory=list)
    saves: list[BlockCopy] = field(default_factory=list)
    # Blocks of requests that must not run (they would compute part of [0, s) with the
    # adapter): reported as load errors so vLLM fails those requests.
    failed_block_ids: list[int] = field(default_factory=list)
