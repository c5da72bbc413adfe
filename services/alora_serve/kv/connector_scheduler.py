"""Scheduler side of the aLoRA KV connector (lives in vLLM's EngineCore process).

It turns the owner's orders (kv_transfer_params) into block-level copies:
- a LoadOrder makes vLLM treat prompt tokens [0, s) as already computed, so the engine
  computes only tokens >= s (with the adapter); the worker copies their base KV in;
- a SaveOrder makes the worker copy a base request's prompt blocks out once prefilled.
It never answers a partial hit: either all of [0, s) is supplied or the request fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

from alora_serve.kv.connector_metadata import AloraConnectorMetadata, BlockCopy, BlockLoad
from alora_serve.kv.orders import LoadOrder, SaveOrder, from_params


@dataclass
class _PendingLoad:
    local_tokens: int
    order: LoadOrder


class ConnectorScheduler:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._kv_cache_manager: Any = None
        self._pending: dict[str, _PendingLoad] = {}
        self._savers: dict[str, tuple[Any, SaveOrder]] = {}
        self._meta = AloraConnectorMetadata()

    def bind_kv_cache_manager(self, manager: Any) -> None:
        self._kv_cache_manager = manager

    def get_num_new_matched_tokens(self, request: Any, local_tokens: int) -> tuple[int, bool]:
        order = from_params(request.kv_transfer_params)
        if isinstance(order, SaveOrder):
            self._savers[request.request_id] = (request, order)
            order = order.preload  # the stored head of a fill, loaded like an adapter's
        if not isinstance(order, LoadOrder) or local_tokens >= order.num_tokens:
            # Nothing to load; a local hit past s can only come from a request with the
            # same adapter and the same s (the cache salt), so it is valid.
            return 0, False
        self._pending[request.request_id] = _PendingLoad(local_tokens, order)
        return order.num_tokens - local_tokens, False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external: int) -> None:
        pending = self._pending.pop(request.request_id, None)
        if pending is None:
            return
        block_ids = blocks.get_block_ids()[0]
        order = pending.order
        if num_external == order.num_tokens - pending.local_tokens:
            first, end = (
                pending.local_tokens // self.block_size,
                ceil(order.num_tokens / self.block_size),
            )
            copies = [
                BlockCopy(block_ids[i], order.slots[i], order.tags[i]) for i in range(first, end)
            ]
            self._meta.loads.append(BlockLoad(copies, order.arena))
        elif num_external == 0 and not request.skip_reading_prefix_cache:
            # vLLM kept a local sub-block hit that already reaches s (same adapter and s).
            pass
        else:
            self._meta.failed_block_ids.extend(block_ids)

    def build_connector_meta(self, scheduler_output: Any) -> AloraConnectorMetadata:
        for request_id, (request, order) in list(self._savers.items()):
            scheduled = scheduler_output.num_scheduled_tokens.get(request_id)
            if scheduled and request.num_computed_tokens + scheduled >= request.num_prompt_tokens:
                self._meta.saves.extend(self._save_copies(request_id, order))
                del self._savers[request_id]
        meta, self._meta = self._meta, AloraConnectorMetadata()
        return meta

    def request_finished(self, request: Any) -> None:
        self._pending.pop(request.request_id, None)
        self._savers.pop(request.request_id, None)

    def _save_copies(self, request_id: str, order: SaveOrder) -> list[BlockCopy]:
        block_ids = self._kv_cache_manager.get_blocks(request_id).get_block_ids()[0]
        return [
            BlockCopy(block_ids[block], slot, tag)
            for block, slot, tag in zip(order.blocks, order.slots, order.tags, strict=True)
        ]
