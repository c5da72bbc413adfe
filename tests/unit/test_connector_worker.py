"""The connector's worker side on real tensors shaped like vLLM-CPU's KV cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from alora_serve.kv.arena import ARENA_PREFIX, ArenaSpec, SlotArena
from alora_serve.kv.connector_metadata import AloraConnectorMetadata, BlockCopy
from alora_serve.kv.connector_worker import ConnectorWorker, KVLayoutMismatchError

LAYERS, BLOCKS, HEADS, BLOCK, HEAD2 = 3, 6, 2, 4, 8  # [blocks, heads, block, 2*head_dim]


@pytest.fixture
def arena(tmp_path: Path):
    spec = ArenaSpec(str(tmp_path / "arena"), 4, LAYERS, HEADS * BLOCK * HEAD2, "float32")
    created = SlotArena.create(spec)
    yield created
    created.unlink()


def kv_caches(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"layers.{i}": torch.randn(BLOCKS, HEADS, BLOCK, HEAD2, generator=g) for i in range(LAYERS)
    }


def test_save_then_load_moves_whole_blocks_between_engines(arena) -> None:
    producer_kv, consumer_kv = kv_caches(1), kv_caches(2)
    producer = ConnectorWorker(arena.spec, BLOCKS)
    producer.register_kv_caches(producer_kv)
    consumer = ConnectorWorker(arena.spec, BLOCKS)
    consumer.register_kv_caches(consumer_kv)

    producer.wait_for_save(AloraConnectorMetadata(saves=[BlockCopy(2, 0, 11), BlockCopy(5, 3, 12)]))
    untouched = {name: t.clone() for name, t in consumer_kv.items()}
    consumer.start_load_kv(
        AloraConnectorMetadata(loads=[[BlockCopy(0, 0, 11), BlockCopy(1, 3, 12)]])
    )

    assert consumer.take_load_errors() == set()
    for name in consumer_kv:
        assert torch.equal(consumer_kv[name][0], producer_kv[name][2])
        assert torch.equal(consumer_kv[name][1], producer_kv[name][5])
        assert torch.equal(consumer_kv[name][2:], untouched[name][2:])


def test_wrong_tag_is_reported_and_nothing_copied(arena) -> None:
    kv = kv_caches(1)
    worker = ConnectorWorker(arena.spec, BLOCKS)
    worker.register_kv_caches(kv)
    worker.wait_for_save(AloraConnectorMetadata(saves=[BlockCopy(2, 0, 11)]))
    before = {name: t.clone() for name, t in kv.items()}
    worker.start_load_kv(AloraConnectorMetadata(loads=[[BlockCopy(4, 0, 99), BlockCopy(5, 1, 0)]]))
    assert worker.take_load_errors() == {4, 5}
    assert worker.take_load_errors() == set()  # reported once
    assert all(torch.equal(kv[n], before[n]) for n in kv)


def test_requests_failed_by_the_scheduler_are_reported(arena) -> None:
    worker = ConnectorWorker(arena.spec, BLOCKS)
    worker.register_kv_caches(kv_caches(1))
    worker.start_load_kv(AloraConnectorMetadata(failed_block_ids=[3, 4]))
    assert worker.take_load_errors() == {3, 4}


def test_layout_mismatch_is_refused(arena) -> None:
    worker = ConnectorWorker(arena.spec, BLOCKS)
    wrong_dtype = {n: t.to(torch.bfloat16) for n, t in kv_caches(1).items()}
    with pytest.raises(KVLayoutMismatchError, match="bfloat16"):
        worker.register_kv_caches(wrong_dtype)
    wrong_block = {f"layers.{i}": torch.zeros(BLOCKS, HEADS, 2 * BLOCK, HEAD2) for i in range(3)}
    with pytest.raises(KVLayoutMismatchError):
        worker.register_kv_caches(wrong_block)


def test_store_smaller_than_a_block_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot hold one block"):
        ArenaSpec.sized(str(tmp_path / "a"), 100, LAYERS, HEADS * BLOCK * HEAD2, "float32")
    spec = ArenaSpec.sized(str(tmp_path / "a"), 10_000, LAYERS, HEADS * BLOCK * HEAD2, "float32")
    assert spec.num_slots == 10_000 // spec.slot_bytes


def test_arenas_of_dead_processes_are_freed(tmp_path: Path) -> None:
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"{ARENA_PREFIX}{dead.pid}-abc"
    mine = tmp_path / f"{ARENA_PREFIX}{os.getpid()}-def"
    for path in (stale, Path(f"{stale}.tags"), mine):
        path.write_bytes(b"x")
    SlotArena.create(ArenaSpec(str(tmp_path / "new"), 1, 1, 4, "float32")).unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name]
