"""The prefill service as a Ray Serve deployment."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray import serve

from alora_serve.engine import Engine, EngineConfig
from alora_serve.engine.metrics import VLLMCollector
from alora_serve.observability.config import ObservabilityConfig
from alora_serve.prefill.leases import LeaseLimits
from alora_serve.prefill.metrics import LeaseCollector
from alora_serve.prefill.service import PrefillService
from alora_serve.topology.base_turns import ServesBaseTurns
from alora_serve.topology.handles import hop
from alora_serve.topology.metrics import RayMetricsBridge
from alora_serve.topology.replica import keep_servers_local, node_id, observe, replica_identity
from alora_serve.transfer.grants import LeaseGrant

logger = logging.getLogger(__name__)


@serve.deployment
class PrefillDeployment(ServesBaseTurns):
    async def __init__(
        self, engine: EngineConfig, limits: LeaseLimits, observability: ObservabilityConfig
    ) -> None:
        keep_servers_local()
        observe(observability, "prefill")
        started = self.base_engine = await Engine.start(engine)
        self.warm_up_s = await self.warm_up_base()
        self.service = PrefillService(started.kv, node_id(), limits)
        collectors = [started.kv.collector(), LeaseCollector(self.service)]
        if engine.vllm_metrics:
            collectors.append(VLLMCollector())
        bridge = RayMetricsBridge(collectors, "prefill")
        self._background = [
            asyncio.create_task(self.service.expire_leases_forever(limits.ttl_s / 4)),
            asyncio.create_task(bridge.publish_forever()),
        ]

    @hop("prefill.lease")
    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        started = time.perf_counter()
        grant = await self.service.lease(tokens, tenant)
        logger.info(
            "prefix leased",
            extra={
                "lease_id": grant.lease_id,
                "prompt_tokens": len(tokens),
                "computed_tokens": grant.computed_tokens,
                "seconds": time.perf_counter() - started,
            },
        )
        return grant

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        await self.service.release(lease_id, unusable)

    async def renew(self, lease_ids: Sequence[int]) -> list[int]:
        return await self.service.renew(lease_ids)

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> np.ndarray:
        # numpy crosses Ray's object store without pickling the bytes
        return (await self.service.read_blocks(lease_id, blocks)).numpy()

    def stats(self) -> dict[str, Any]:
        return {
            **replica_identity(),
            "active_leases": self.service.active_leases,
            "fills": self.base_engine.kv.fills,
            "in_flight": self.base_engine.in_flight,
            "store": vars(self.base_engine.kv.stats()),
            # first-use costs paid before serving
            "warm_up": {"warmed": ["base model"], "seconds": self.warm_up_s},
        }

    def __del__(self) -> None:
        for task in self._background:
            task.cancel()
        self.base_engine.close()
