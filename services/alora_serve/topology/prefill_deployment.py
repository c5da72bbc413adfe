"""The prefill service as a Ray Serve deployment, and the client decode workers use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from alora_serve.disagg.grants import LeaseGrant
from alora_serve.disagg.metrics import LeaseCollector
from alora_serve.disagg.prefill_service import LeaseLimits, PrefillService
from alora_serve.engine import Engine, EngineConfig
from alora_serve.topology.base_turns import ServesBaseTurns
from alora_serve.topology.handles import answer
from alora_serve.topology.metrics import RayMetricsBridge
from alora_serve.topology.replica import keep_servers_local, node_id, replica_identity
from alora_serve.topology.routing import session_id

PREFILL_CALL_TIMEOUT_S = 120.0  # a lease may wait for the base prefill of a long prefix
# A conversation's first tokens (its system prompt and opening turn) pick its prefill replica.
AFFINITY_TOKENS = 512


@serve.deployment
class PrefillDeployment(ServesBaseTurns):
    async def __init__(self, engine: EngineConfig, limits: LeaseLimits) -> None:
        keep_servers_local()
        started = self.base_engine = await Engine.start(engine)
        self.warm_up_s = await self.warm_up_base()
        self.service = PrefillService(started, node_id(), limits)
        self._background = [
            asyncio.create_task(self.service.expire_leases_forever(limits.ttl_s / 4)),
            asyncio.create_task(
                RayMetricsBridge(
                    [started.metrics_collector(), LeaseCollector(self.service)]
                ).publish_forever()
            ),
        ]

    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        return await self.service.lease(tokens, tenant)

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        await self.service.release(lease_id, unusable)

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> np.ndarray:
        # numpy crosses Ray's object store without pickling the bytes
        return (await self.service.read_blocks(lease_id, blocks)).numpy()

    def stats(self) -> dict[str, Any]:
        return {
            **replica_identity(),
            "active_leases": self.service.active_leases,
            "fills": self.service.engine.prefixes.fills,
            "in_flight": self.service.engine.in_flight,
            "store": vars(self.service.engine.kv_store_stats()),
            # first-use costs paid before serving
            "warm_up": {"warmed": ["base model"], "seconds": self.warm_up_s},
        }

    def __del__(self) -> None:
        for task in self._background:
            task.cancel()
        self.service.engine.close()


class HandlePrefillClient:
    """The prefill service as a decode worker reaches it: a Serve handle, with timeouts.

    With several prefill replicas, a conversation's calls keep to one replica (session
    affinity on the conversation's opening tokens): its leases, reads and releases reach
    the replica that holds its blocks, and its turns grow one store.
    """

    def __init__(self, handle: DeploymentHandle, timeout_s: float = PREFILL_CALL_TIMEOUT_S):
        self._handle = handle
        self._timeout_s = timeout_s
        self._sessions: dict[int, str] = {}  # lease id -> session of its replica

    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        session = session_id("", tenant, repr(list(tokens[:AFFINITY_TOKENS])))
        grant = await self._call(session, "lease", list(tokens), tenant)
        self._sessions[grant.lease_id] = session
        return grant

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        await self._call(self._sessions.pop(lease_id, ""), "release", lease_id, unusable)

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> torch.Tensor:
        session = self._sessions.get(lease_id, "")
        return torch.from_numpy(
            np.array(await self._call(session, "read_blocks", lease_id, list(blocks)))
        )

    async def _call(self, session: str, method: str, *args: Any) -> Any:
        return await answer(
            self._handle, method, *args, timeout_s=self._timeout_s, session=session or None
        )
