"""The decode worker as a Ray Serve deployment (also the colocated engine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from alora_serve.decode.worker import DecodeWorker
from alora_serve.engine import EngineConfig, Generation, SamplingOptions
from alora_serve.intrinsics.call import IntrinsicResult, IntrinsicsCall
from alora_serve.observability.config import ObservabilityConfig
from alora_serve.topology.base_turns import ServesBaseTurns
from alora_serve.topology.handles import hop
from alora_serve.topology.metrics import RayMetricsBridge
from alora_serve.topology.prefill_client import HandlePrefillClient
from alora_serve.topology.replica import keep_servers_local, node_id, observe, replica_identity

logger = logging.getLogger(__name__)


@serve.deployment
class IntrinsicWorker(ServesBaseTurns):
    """A decode worker when given the prefill service, else a colocated engine."""

    async def __init__(
        self,
        engine: EngineConfig,
        library: str,
        intrinsics: Sequence[str],
        prefill: DeploymentHandle | None,
        observability: ObservabilityConfig,
    ) -> None:
        keep_servers_local()
        role = "decode" if prefill is not None else "colocated"
        observe(observability, role)
        client = HandlePrefillClient(prefill) if prefill is not None else None
        self.worker = await DecodeWorker.start(engine, library, intrinsics, client, node_id())
        self.base_engine = self.worker.engine
        started = time.perf_counter()
        self.warmed_up = await self.worker.warm_up()
        if not self.base_engine.merged:
            await self.warm_up_base()
            self.warmed_up.append("base model")
        self.warm_up_s = time.perf_counter() - started
        bridge = RayMetricsBridge(self.worker.collectors(), role)
        self._metrics_task = asyncio.create_task(bridge.publish_forever())

    @hop("decode.run_many")
    async def run_many(self, call: IntrinsicsCall) -> list[IntrinsicResult]:
        started = time.perf_counter()
        results = await self.worker.run_many(call)
        logger.info(
            "intrinsics run",
            extra={"intrinsics": call.intrinsics, "seconds": time.perf_counter() - started},
        )
        return results

    @hop("decode.prefill")
    async def prefill(self, call: IntrinsicsCall) -> int:
        return await self.worker.prefill(call)

    async def invoke(
        self, adapter: str, prompt: Sequence[int], options: SamplingOptions, tenant: str
    ) -> Generation:
        return await self.worker.invoke(adapter, prompt, options, tenant)

    def stats(self) -> dict[str, Any]:
        return {
            **replica_identity(),
            **self.worker.stats(),
            # first-use costs paid before serving
            "warm_up": {"warmed": self.warmed_up, "seconds": self.warm_up_s},
        }

    def __del__(self) -> None:
        with contextlib.suppress(AttributeError):  # the constructor may have failed
            self._metrics_task.cancel()
            self.worker.close()
