"""Scheduler side of the aLoRA KV connector (lives in vLLM's EngineCore process).

It turns the owner's orders (kv_transfer_params) into block-level copies:
- a LoadOrder makes vLLM treat prompt tokens [0, s) as already computed, so the engine
  computes only tokens >= s (with the adapter); the worker copies their base KV in;
- a SaveOrder makes the worker copy a base request's prompt blocks out once prefilled.
It never answers a partial hit: either all of [0, s) is supplied or the request fails.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from alora_serve.kv.connector.metadata import AloraConnectorMetadata, BlockCopy, BlockLoad
from alora_serve.kv.orders import LoadOrder, SaveOrder, from_params


class ConnectorScheduler:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._kv_cache_manager: Any = None
        self._savers: dict[str, tuple[Any, SaveOrder]] = {}
        self._meta = AloraConnectorMetadata()

    def bind_kv_cache_manager(self, manager: Any) -> None:
        self._kv_cache_manager = manager

    def get_num_new_matched_tokens(self, request: Any, local_tokens: int) -> tuple[int, bool]:
        """Tokens of [0, s) the store supplies beyond vLLM's local hit. Side-effect free,
        as vLLM's contract asks (it may ask more than once); the state is recorded in
        ``update_state_after_alloc``."""
        order = _load_of(from_params(request.kv_transfer_params))
        if order is None or local_tokens >= order.num_tokens:
            # Nothing to load; a local hit past s can only come from a request with the
            # same adapter and the same s (the cache salt), so it is valid.
            return 0, False
        return order.num_tokens - local_tokens, False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external: int) -> None:
        order = from_params(request.kv_transfer_params)
        if isinstance(order, SaveOrder):
            self._savers[request.request_id] = (request, order)
        load = _load_of(order)
        if load is None:
            return
        block_ids = blocks.get_block_ids()[0]
        local_tokens = load.num_tokens - num_external
        if num_external > 0 and local_tokens >= 0 and local_tokens % self.block_size == 0:
            # vLLM offers connectors block-aligned local hits, so what it takes from the
            # store is [local hit, s), starting at a block boundary.
            first = local_tokens // self.block_size
            end = ceil(load.num_tokens / self.block_size)
            copies = [
                BlockCopy(block_ids[i], load.slots[i], load.tags[i]) for i in range(first, end)
            ]
            self._meta.loads.append(BlockLoad(copies, load.arena))
        elif num_external == 0 and not request.skip_reading_prefix_cache:
            # vLLM's local hit already reaches s (same adapter and s): nothing to load.
            pass
        else:  # [0, s) cannot be supplied whole: the request fails, never runs partial
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
        self._savers.pop(request.request_id, None)

    def _save_copies(self, request_id: str, order: SaveOrder) -> list[BlockCopy]:
        block_ids = self._kv_cache_manager.get_blocks(request_id).get_block_ids()[0]
        return [
            BlockCopy(block_ids[block], slot, tag)
            for block, slot, tag in zip(order.blocks, order.slots, order.tags, strict=True)
        ]


def _load_of(order: Any) -> LoadOrder | None:
    """What a request's order must have loaded: a LoadOrder, or the stored head of a fill."""
    if isinstance(order, SaveOrder):
        order = order.preload
    return order if isinstance(order, LoadOrder) else None
