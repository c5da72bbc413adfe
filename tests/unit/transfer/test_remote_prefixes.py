"""The decode side's prefix source with a stand-in prefill service (no engines)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import torch

from alora_serve.engine.errors import KVLoadError
from alora_serve.engine.kv_owner import KVOwner
from alora_serve.engine.prefixes import PrefixManager
from alora_serve.kv.fingerprint import IncompatibleKVError, KVFingerprint
from alora_serve.kv.orders import LoadOrder
from alora_serve.kv.store.arena import ArenaSpec, SlotArena
from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.prefix_store import PrefixStore
from alora_serve.transfer.grants import LeaseGrant
from alora_serve.transfer.remote_prefixes import PrefillUnavailableError, RemotePrefixes

BLOCK, LAYERS, NUMEL = 4, 2, 8
FINGERPRINT = KVFingerprint("m@1", "float32", BLOCK, "CPU_ATTN", LAYERS, NUMEL)
TOKENS = list(range(10))  # three blocks


class FakePrefill:
    def __init__(
        self, host: str, fingerprint: KVFingerprint = FINGERPRINT, ttl_s: float | None = None
    ) -> None:
        self.host, self.fingerprint, self.ttl_s = host, fingerprint, ttl_s
        self.leases: dict[int, bool] = {}  # id -> released unusable?
        self.active = 0
        self.reads: list[tuple[int, ...]] = []
        self.renewals: list[int] = []

    async def lease(self, tokens, tenant) -> LeaseGrant:
        await asyncio.sleep(0)  # a real service answers later: concurrent holders may join
        lease_id = len(self.leases) + 1
        self.leases[lease_id] = None
        self.active += 1
        order = LoadOrder(len(tokens), (0, 1, 2), (7, 8, 9), arena="/dev/shm/prefill")
        # As if the service computed the whole prefix for this lease.
        return LeaseGrant(lease_id, order, self.host, self.fingerprint, len(tokens), self.ttl_s)

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        self.leases[lease_id] = unusable
        self.active -= 1

    async def renew(self, lease_ids) -> list[int]:
        self.renewals.extend(lease_ids)
        return [i for i in lease_ids if self.leases[i] is not None]  # released: lost

    async def read_blocks(self, lease_id: int, blocks) -> torch.Tensor:
        self.reads.append(tuple(blocks))
        return torch.full((len(blocks), LAYERS, NUMEL), float(lease_id))


@pytest.fixture
def arena(tmp_path: Path):
    created = SlotArena.create(ArenaSpec(str(tmp_path / "arena"), 8, LAYERS, NUMEL, "float32"))
    yield created
    created.unlink()


def source(prefill, arena, recompute=None) -> RemotePrefixes:
    async def no_local_fill(tokens, order, tenant):
        raise AssertionError("the local fill must not run")

    prefixes = PrefixManager(PrefixStore(BlockPool(8), BLOCK, "m"), no_local_fill)
    return RemotePrefixes(prefill, KVOwner(arena, prefixes, FINGERPRINT), "node-a", recompute)


async def test_same_host_holders_of_one_prefix_share_one_lease(arena) -> None:
    prefill = FakePrefill("node-a")
    remote = source(prefill, arena)
    async with remote.leased(TOKENS, "t") as outer:
        assert outer.load_order().arena == "/dev/shm/prefill"
        async with remote.leased(TOKENS, "t") as inner:
            assert inner.lease_id == outer.lease_id
            # The acquirer's lease computed the prefix; a joiner found it.
            assert (outer.computed_tokens, inner.computed_tokens) == (len(TOKENS), 0)
        await asyncio.gather(*(hold(remote) for _ in range(3)))
        assert prefill.active == 1
    assert prefill.active == 0 and list(prefill.leases) == [1]
    assert remote.counts.in_place == 1
    assert remote.counts.in_place_blocks == 3  # TOKENS fill three blocks
    assert remote.counts.in_place_bytes == 3 * arena.spec.slot_bytes
    assert transfers(remote, "in_place") == 1 and transfers(remote, "pulled") == 0


def transfers(remote: RemotePrefixes, transport: str) -> float:
    (family,) = remote.latency.collect()
    counts = [
        s.value
        for s in family.samples
        if s.name.endswith("_count") and s.labels["transport"] == transport
    ]
    return sum(counts)  # none before the first transfer by ``transport``


async def test_a_lease_held_in_place_is_renewed_until_its_holders_leave(arena) -> None:
    prefill = FakePrefill("node-a", ttl_s=0.06)  # renewed every 0.02 s
    remote = source(prefill, arena)
    async with remote.leased(TOKENS, "t"):
        await asyncio.sleep(0.25)  # a decode four times the TTL
        renewed = len(prefill.renewals)
        assert renewed >= 3 and set(prefill.renewals) == {1}
    await asyncio.sleep(0.1)
    assert len(prefill.renewals) == renewed  # released: no more renewals
    assert prefill.active == 0


async def test_holders_that_join_an_acquisition_in_flight_count_its_computation(arena) -> None:
    prefill = FakePrefill("node-a")
    remote = source(prefill, arena)

    async def computed() -> int:
        async with remote.leased(TOKENS, "t") as held:
            return held.computed_tokens

    assert await asyncio.gather(computed(), computed()) == [len(TOKENS)] * 2
    assert list(prefill.leases) == [1]  # one lease served both


async def hold(remote: RemotePrefixes) -> None:
    async with remote.leased(TOKENS, "t"):
        await asyncio.sleep(0)


async def test_bad_bytes_are_reported_when_the_last_holder_leaves(arena) -> None:
    prefill = FakePrefill("node-a")
    remote = source(prefill, arena)
    with pytest.raises(KVLoadError):
        async with remote.leased(TOKENS, "t"), remote.leased(TOKENS, "t"):
            raise KVLoadError("tags differ")
    assert prefill.leases == {1: True}


async def test_other_host_pulls_into_the_local_store_once(arena) -> None:
    prefill = FakePrefill("node-b")
    remote = source(prefill, arena)
    async with remote.leased(TOKENS, "t") as lease:
        assert lease.load_order().arena is None  # the worker's own store
        assert torch.equal(arena.data[list(lease.slots)], torch.full((3, LAYERS, NUMEL), 2.0))
    async with remote.leased(TOKENS, "t"):
        pass
    assert prefill.reads == [(0, 1, 2)] and prefill.active == 0
    assert (remote.counts.pulled_blocks, remote.counts.local_hits) == (3, 1)
    assert transfers(remote, "pulled") == 1  # the local hit transferred nothing


async def test_incompatible_prefill_is_refused_and_released(arena) -> None:
    prefill = FakePrefill("node-a", dataclasses.replace(FINGERPRINT, dtype="bfloat16"))
    with pytest.raises(IncompatibleKVError, match="dtype"):
        async with source(prefill, arena).leased(TOKENS, "t"):
            pass
    assert prefill.active == 0


async def test_unreachable_prefill_recomputes_or_fails_fast(arena) -> None:
    class Down(FakePrefill):
        async def lease(self, tokens, tenant):
            raise ConnectionError("gone")

    recomputed = []

    async def recompute(tokens, order, tenant) -> int:
        recomputed.append(order.blocks)
        return len(tokens)

    async with source(Down("node-a"), arena, recompute).leased(TOKENS, "t"):
        pass
    assert recomputed == [(0, 1, 2)]
    with pytest.raises(PrefillUnavailableError, match="cannot compute it"):
        async with source(Down("node-a"), arena).leased(list(range(20, 30)), "t"):
            pass


async def test_a_holder_joining_during_the_lease_call_keeps_it_alive(arena) -> None:
    class SlowPrefill(FakePrefill):
        async def lease(self, tokens, tenant):
            await asyncio.sleep(0.01)
            return await super().lease(tokens, tenant)

    prefill = SlowPrefill("node-a")
    remote = source(prefill, arena)
    seen = []

    async def quick() -> None:
        async with remote.leased(TOKENS, "t") as held:
            seen.append((held.load_order(), prefill.active))

    async def joiner() -> None:
        await asyncio.sleep(0)  # joins while the first holder's lease call is in flight
        async with remote.leased(TOKENS, "t") as held:
            await asyncio.sleep(0.01)  # still reading after the first holder left
            seen.append((held.load_order(), prefill.active))

    await asyncio.gather(quick(), joiner())
    assert [active for _, active in seen] == [1, 1]  # the lease was live for both
    assert prefill.active == 0 and list(prefill.leases) == [1]


async def test_a_failed_lease_call_fails_every_joiner_and_leaves_nothing_held(arena) -> None:
    class Failing(FakePrefill):
        async def lease(self, tokens, tenant):
            await asyncio.sleep(0.01)
            raise IncompatibleKVError("another base model")

    remote = source(Failing("node-a"), arena)
    outcomes = await asyncio.gather(hold(remote), hold(remote), return_exceptions=True)
    assert all(isinstance(o, IncompatibleKVError) for o in outcomes)
    assert remote._held == {}
