"""An engine's store through the one interface the prefill service and the transfer layer
use: leases, their bytes, and what the store is compatible with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alora_serve.engine.kv_owner import KVOwner
from alora_serve.engine.prefixes import PrefixManager
from alora_serve.kv.fingerprint import KVFingerprint
from alora_serve.kv.store.arena import ArenaSpec, SlotArena
from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.prefix_store import PrefixStore

BLOCK, LAYERS, NUMEL = 4, 2, 8
TOKENS = list(range(10))  # three blocks, the last partial


@pytest.fixture
def owner(tmp_path: Path):
    arena = SlotArena.create(ArenaSpec(str(tmp_path / "arena"), 8, LAYERS, NUMEL, "float32"))
    written: list[tuple[int, ...]] = []

    async def fill(tokens, order, tenant) -> int:  # as the engine's base model would
        data = torch.stack([torch.full((LAYERS, NUMEL), float(b)) for b in order.blocks])
        arena.write_slots(order.slots, order.tags, data)
        written.append(order.blocks)
        return len(tokens)

    prefixes = PrefixManager(PrefixStore(BlockPool(8), BLOCK, "m"), fill)
    yield KVOwner(arena, prefixes), written
    arena.unlink()


async def test_a_lease_reads_the_blocks_its_fill_wrote(owner) -> None:
    kv, written = owner
    lease = await kv.acquire(TOKENS, "t")
    assert written == [(0, 1, 2)] and lease.computed_tokens == len(TOKENS)
    assert kv.read_blocks(lease, [2, 0])[:, 0, 0].tolist() == [2.0, 0.0]
    assert kv.stats().pinned_blocks == 3
    kv.release(lease)
    assert kv.stats().pinned_blocks == 0
    assert kv.has(TOKENS, "t") and not kv.has(TOKENS, "another tenant")
    assert (kv.fills, kv.filled_tokens) == (1, len(TOKENS))


async def test_a_store_says_what_its_blocks_are_compatible_with(owner, tmp_path) -> None:
    kv, _ = owner
    with pytest.raises(RuntimeError, match="has not registered its KV cache"):
        kv.fingerprint()
    published = KVFingerprint("m@1", "float32", BLOCK, "CPU_ATTN", LAYERS, NUMEL)
    kv.arena.publish_fingerprint(published)  # as vLLM's worker does once it runs
    assert kv.fingerprint() == published
    assert kv.arena_path == str(tmp_path / "arena")
    assert kv.block_bytes == LAYERS * NUMEL * 4
