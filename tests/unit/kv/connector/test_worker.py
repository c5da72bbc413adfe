"""The connector's worker side on real tensors shaped like vLLM-CPU's KV cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from alora_serve.kv.connector.metadata import AloraConnectorMetadata, BlockCopy, BlockLoad
from alora_serve.kv.connector.worker import ConnectorWorker, KVLayoutMismatchError
from alora_serve.kv.fingerprint import IncompatibleKVError, KVFingerprint
from alora_serve.kv.store.arena import ARENA_PREFIX, ArenaSpec, SlotArena

LAYERS, BLOCKS, HEADS, BLOCK, HEAD2 = 3, 6, 2, 4, 8  # [blocks, heads, block, 2*head_dim]


BACKEND = "CPU_ATTN"


def make_arena(path: Path) -> SlotArena:
    return SlotArena.create(ArenaSpec(str(path), 4, LAYERS, HEADS * BLOCK * HEAD2, "float32"))


@pytest.fixture
def arena(tmp_path: Path):
    created = make_arena(tmp_path / "arena")
    yield created
    created.unlink()


def worker(arena: SlotArena, kv: dict[str, torch.Tensor], model: str = "m") -> ConnectorWorker:
    registered = ConnectorWorker(arena.spec, BLOCKS, kv_model=model, block_size=BLOCK)
    registered.register_kv_caches(kv, BACKEND)
    return registered


def kv_caches(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"layers.{i}": torch.randn(BLOCKS, HEADS, BLOCK, HEAD2, generator=g) for i in range(LAYERS)
    }


def test_save_then_load_moves_whole_blocks_between_engines(arena) -> None:
    producer_kv, consumer_kv = kv_caches(1), kv_caches(2)
    producer = worker(arena, producer_kv)
    consumer = worker(arena, consumer_kv)

    producer.wait_for_save(AloraConnectorMetadata(saves=[BlockCopy(2, 0, 11), BlockCopy(5, 3, 12)]))
    untouched = {name: t.clone() for name, t in consumer_kv.items()}
    consumer.start_load_kv(
        AloraConnectorMetadata(loads=[BlockLoad([BlockCopy(0, 0, 11), BlockCopy(1, 3, 12)])])
    )

    assert consumer.take_load_errors() == set()
    for name in consumer_kv:
        assert torch.equal(consumer_kv[name][0], producer_kv[name][2])
        assert torch.equal(consumer_kv[name][1], producer_kv[name][5])
        assert torch.equal(consumer_kv[name][2:], untouched[name][2:])


def test_wrong_tag_is_reported_and_nothing_copied(arena) -> None:
    kv = kv_caches(1)
    side = worker(arena, kv)
    side.wait_for_save(AloraConnectorMetadata(saves=[BlockCopy(2, 0, 11)]))
    before = {name: t.clone() for name, t in kv.items()}
    side.start_load_kv(
        AloraConnectorMetadata(loads=[BlockLoad([BlockCopy(4, 0, 99), BlockCopy(5, 1, 0)])])
    )
    assert side.take_load_errors() == {4, 5}
    assert side.take_load_errors() == set()  # reported once
    assert all(torch.equal(kv[n], before[n]) for n in kv)


def test_requests_failed_by_the_scheduler_are_reported(arena) -> None:
    side = worker(arena, kv_caches(1))
    side.start_load_kv(AloraConnectorMetadata(failed_block_ids=[3, 4]))
    assert side.take_load_errors() == {3, 4}


def test_same_host_transfer_reads_another_engines_arena_in_place(tmp_path: Path) -> None:
    prefill_arena, decode_arena = make_arena(tmp_path / "p"), make_arena(tmp_path / "d")
    prefill_kv, decode_kv = kv_caches(1), kv_caches(2)
    prefill, decode = worker(prefill_arena, prefill_kv), worker(decode_arena, decode_kv)
    prefill.wait_for_save(AloraConnectorMetadata(saves=[BlockCopy(3, 1, 21)]))

    load = BlockLoad([BlockCopy(0, 1, 21)], arena=prefill_arena.spec.path)
    decode.start_load_kv(AloraConnectorMetadata(loads=[load]))

    assert decode.take_load_errors() == set()
    assert all(torch.equal(decode_kv[n][0], prefill_kv[n][3]) for n in decode_kv)
    assert int(decode_arena.tags[1]) == 0  # nothing staged in the decode engine's store


def test_blocks_of_an_incompatible_engine_are_refused(tmp_path: Path) -> None:
    other_model, unpublished = make_arena(tmp_path / "p"), make_arena(tmp_path / "q")
    worker(other_model, kv_caches(1), model="another-base").wait_for_save(
        AloraConnectorMetadata(saves=[BlockCopy(3, 1, 21)])
    )
    decode_kv = kv_caches(2)
    decode = worker(make_arena(tmp_path / "d"), decode_kv)
    before = {n: t.clone() for n, t in decode_kv.items()}
    loads = [
        BlockLoad([BlockCopy(0, 1, 21)], arena=other_model.spec.path),
        BlockLoad([BlockCopy(1, 1, 0)], arena=unpublished.spec.path),
        BlockLoad([BlockCopy(2, 1, 0)], arena=str(tmp_path / "missing")),
    ]
    decode.start_load_kv(AloraConnectorMetadata(loads=loads))
    assert decode.take_load_errors() == {0, 1, 2}
    assert all(torch.equal(decode_kv[n], before[n]) for n in decode_kv)


def test_fingerprint_names_what_differs() -> None:
    here = KVFingerprint("m@1", "float32", 128, "CPU_ATTN", 30, 49152)
    there = KVFingerprint("m@2", "bfloat16", 128, "CPU_ATTN", 30, 49152)
    with pytest.raises(IncompatibleKVError, match="model: 'm@1' here, 'm@2' there; dtype"):
        here.require_compatible(there, "prefill")
    here.require_compatible(KVFingerprint.from_json(here.to_json()), "itself")


def test_layout_mismatch_is_refused(arena) -> None:
    side = ConnectorWorker(arena.spec, BLOCKS, kv_model="m", block_size=BLOCK)
    wrong_dtype = {n: t.to(torch.bfloat16) for n, t in kv_caches(1).items()}
    with pytest.raises(KVLayoutMismatchError, match="bfloat16"):
        side.register_kv_caches(wrong_dtype, BACKEND)
    wrong_block = {f"layers.{i}": torch.zeros(BLOCKS, HEADS, 2 * BLOCK, HEAD2) for i in range(3)}
    with pytest.raises(KVLayoutMismatchError):
        side.register_kv_caches(wrong_block, BACKEND)


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
