"""A decode engine's PrefixSource: base KV leased from the prefill service.

On the prefill service's host the decode engine's worker reads the service's arena in
place (no copy besides the one into vLLM's own cache). From another host it pulls the
blocks' bytes into its own store, which keeps them (bounded, LRU) for later calls on the
same conversation. The transfer is chosen per call from where the grant says the KV is.

When the prefill service cannot supply the KV (unreachable, restarting, a failed
transfer), a lora-mode worker computes it with its own base model (``recompute``): slower,
still exact. A merged-adapter worker has no base model and fails fast instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from alora_serve.engine import Engine
from alora_serve.engine.errors import KVLoadError
from alora_serve.engine.kv_owner import KVOwner
from alora_serve.engine.prefixes import Fill, HoldsPrefix
from alora_serve.errors import UnavailableError, failure
from alora_serve.kv.fingerprint import IncompatibleKVError
from alora_serve.kv.orders import SaveOrder
from alora_serve.kv.store.prefix_store import PrefixLease
from alora_serve.transfer.grants import LeaseGrant, PrefillClient
from alora_serve.transfer.metrics import TransferCounts, transfer_latency

logger = logging.getLogger(__name__)


class PrefillUnavailableError(UnavailableError):
    """The prefill service could not supply base KV, and this worker cannot compute it."""


Release = Callable[[bool], Awaitable[None]]  # argument: the bytes proved unusable
RENEWALS_PER_TTL = 3  # a lease held in place is renewed this often per TTL


@dataclass
class _Holding:
    acquired: asyncio.Future  # (held prefix, its release)
    holders: int = 0
    unusable: bool = False


class RemotePrefixes:
    def __init__(
        self,
        prefill: PrefillClient,
        local: KVOwner,
        host: str,
        recompute: Fill | None,
    ) -> None:
        self.prefill = prefill
        self.local = local  # this worker's own store: pulled blocks are kept there
        self.fingerprint = local.fingerprint()  # raises now if the engine has none yet
        self.host = host
        self.recompute = recompute
        self.counts = TransferCounts()
        self.latency = transfer_latency()
        self._prefill_is_local = True  # until a grant says otherwise
        self._held: dict[tuple[str, tuple[int, ...]], _Holding] = {}

    @contextlib.asynccontextmanager
    async def leased(self, tokens: Sequence[int], tenant: str) -> AsyncIterator[HoldsPrefix]:
        """The prefix's base KV, held until the last concurrent holder of the same prefix
        leaves (a composed call holds its prefixes while its calls lease them again: one
        lease serves all of them)."""
        key = (tenant, tuple(tokens))
        holding = self._held.get(key)
        acquiring = holding is None
        if acquiring:
            holding = self._held[key] = _Holding(asyncio.get_running_loop().create_future())
        holding.holders += 1  # counted before any await: the lease outlives every joiner
        # A holder that joins a lease already granted found the prefix stored; one that
        # joins while it is being acquired waited for what the acquirer computes.
        found = not acquiring and holding.acquired.done()
        try:
            if acquiring:
                await self._acquire_for(holding, key, tokens, tenant)
            held, _ = await asyncio.shield(holding.acquired)
            if found:
                held = dataclasses.replace(held, computed_tokens=0)
            try:
                yield held
            except KVLoadError:
                holding.unusable = True  # its bytes are dropped; a retry recomputes them
                raise
        finally:
            holding.holders -= 1
            if holding.holders == 0:
                await self._let_go(holding, key)

    async def _acquire_for(self, holding: _Holding, key, tokens, tenant: str) -> None:
        try:
            holding.acquired.set_result(await self._acquire(tokens, tenant))
        except BaseException as exc:
            del self._held[key]  # later callers try afresh; joiners see this failure
            holding.acquired.set_exception(exc)
            holding.acquired.exception()  # retrieved: no "never retrieved" warning
            raise

    async def _let_go(self, holding: _Holding, key) -> None:
        if self._held.get(key) is holding:
            del self._held[key]
        if holding.acquired.done() and holding.acquired.exception() is None:
            _, release = holding.acquired.result()
            await release(holding.unusable)

    async def _acquire(self, tokens: Sequence[int], tenant: str) -> tuple[HoldsPrefix, Release]:
        stored_here = self.local.has(tokens, tenant)
        computed_remotely = 0  # by a grant that turned out to be on another host
        if self._prefill_is_local and not stored_here:
            started = time.perf_counter()
            grant = await self._lease_or_none(tokens, tenant)
            if grant is not None:
                self._prefill_is_local = grant.host == self.host
                if self._prefill_is_local:
                    self._count_in_place(grant, time.perf_counter() - started)
                    renewing = asyncio.create_task(self._keep_alive(grant))
                    return grant, functools.partial(self._release_renewed, grant, renewing)
                computed_remotely = grant.computed_tokens
                await self._release(grant, unusable=False)
        if stored_here:
            self.counts.local_hits += 1
        lease = await self.local.acquire(tokens, tenant, fill=self._pull_or_recompute)
        computed = max(lease.computed_tokens, computed_remotely)
        lease = dataclasses.replace(lease, computed_tokens=computed)
        return lease, functools.partial(self._release_local, lease)

    def _count_in_place(self, grant: LeaseGrant, seconds: float) -> None:
        blocks = len(grant.order.slots)
        self.counts.in_place += 1
        self.counts.in_place_blocks += blocks
        self.counts.in_place_bytes += blocks * self.local.block_bytes
        self.latency.labels("in_place").observe(seconds)

    async def _keep_alive(self, grant: LeaseGrant) -> None:
        """Renew a lease held in place while its calls run (a long decode may outlast the
        lease's TTL: expired, its blocks could be evicted under a later read)."""
        if grant.ttl_s is None:
            return
        while True:
            await asyncio.sleep(grant.ttl_s / RENEWALS_PER_TTL)
            try:
                if await self.prefill.renew([grant.lease_id]):
                    logger.warning("prefix lease %d expired before renewal", grant.lease_id)
                    return
            except Exception as exc:  # the next renewal may get through
                logger.warning("could not renew prefix lease %d: %s", grant.lease_id, failure(exc))

    async def _release_renewed(
        self, grant: LeaseGrant, renewing: asyncio.Task, unusable: bool
    ) -> None:
        renewing.cancel()
        await self._release(grant, unusable)

    async def _release_local(self, lease: PrefixLease, unusable: bool) -> None:
        self.local.release(lease, unusable)

    async def _lease_or_none(self, tokens: Sequence[int], tenant: str) -> LeaseGrant | None:
        """A grant, or None when the local path should take over (it recomputes)."""
        try:
            return await self._lease(tokens, tenant)
        except IncompatibleKVError:
            raise
        except Exception as exc:
            self._require_recompute(exc)
            return None

    async def _pull_or_recompute(self, tokens: Sequence[int], order: SaveOrder, tenant: str):
        try:
            return await self._pull(tokens, order, tenant)
        except IncompatibleKVError:
            raise
        except Exception as exc:
            self._require_recompute(exc)
            computed = await self.recompute(tokens, order, tenant)
            self.counts.recomputed += 1
            self.counts.recomputed_tokens += computed
            return computed

    def _require_recompute(self, cause: Exception) -> None:
        if self.recompute is None:
            raise PrefillUnavailableError(
                f"the prefill service could not supply base KV ({failure(cause)}), and this "
                "merged-adapter worker cannot compute it; retry when the service is back"
            ) from cause
        logger.warning("prefill service failed (%s); computing base KV here", failure(cause))

    async def _pull(self, tokens: Sequence[int], order: SaveOrder, tenant: str) -> int:
        """Fill the local store's missing blocks with the prefill service's bytes."""
        started = time.perf_counter()
        grant = await self._lease(tokens, tenant)
        try:
            blocks = await self.prefill.read_blocks(grant.lease_id, order.blocks)
        finally:
            await self._release(grant, unusable=False)
        self.local.write_blocks(order.slots, order.tags, blocks)
        self.counts.pulled_blocks += len(order.blocks)
        self.counts.pulled_bytes += blocks.numel() * blocks.element_size()
        self.latency.labels("pulled").observe(time.perf_counter() - started)
        return grant.computed_tokens  # computed for this call, by the prefill service

    async def _lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        grant = await self.prefill.lease(list(tokens), tenant)
        try:
            self.fingerprint.require_compatible(grant.fingerprint, "the prefill service")
        except Exception:
            await self._release(grant, unusable=False)
            raise
        return grant

    async def _release(self, grant: LeaseGrant, unusable: bool) -> None:
        try:
            await self.prefill.release(grant.lease_id, unusable)
        except Exception as exc:  # the lease expires on its own
            logger.warning("could not release prefix lease %d: %s", grant.lease_id, exc)


def attach_to_prefill(engine: Engine, prefill: PrefillClient, host: str) -> RemotePrefixes:
    """Make ``engine`` a decode engine: its adapter calls get base KV from ``prefill``."""
    recompute = None if engine.merged else engine.compute_base_kv
    source = RemotePrefixes(prefill, engine.kv, host, recompute)
    engine.prefix_source = source
    return source
