"""Per-step orders from the connector's scheduler side to its worker side."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorMetadata


@dataclass(frozen=True)
class BlockCopy:
    block_id: int  # vLLM KV cache block
    slot: int  # store slot
    tag: int  # expected (load) or written (save) content tag of the slot


@dataclass
class AloraConnectorMetadata(KVConnectorMetadata):
    # One group per request: a request's load is applied whole or reported failed whole.
    loads: list[list[BlockCopy]] = field(default_factory=list)
    saves: list[BlockCopy] = field(default_factory=list)
    # Blocks of requests that must not run (they would compute part of [0, s) with the
    # adapter): reported as load errors so vLLM fails those requests.
    failed_block_ids: list[int] = field(default_factory=list)
