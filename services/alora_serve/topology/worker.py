"""The intrinsic worker deployment: a decode worker, or the colocated engine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from alora_serve.disagg.metrics import TransferCollector
from alora_serve.disagg.remote_prefixes import attach_to_prefill
from alora_serve.engine import Engine, EngineConfig, Generation, SamplingOptions
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.runner import IntrinsicResult, IntrinsicRunner
from alora_serve.topology.base_turns import ServesBaseTurns
from alora_serve.topology.metrics import RayMetricsBridge
from alora_serve.topology.prefill_deployment import HandlePrefillClient
from alora_serve.topology.replica import keep_servers_local, node_id, replica_identity


@serve.deployment
class IntrinsicWorker(ServesBaseTurns):
    """Runs intrinsic calls on its engine: a decode worker when given a prefill service
    (base KV comes from it), else a colocated engine (its own base model fills its store)."""

    async def __init__(
        self,
        engine: EngineConfig,
        library: str,
        intrinsics: Sequence[str],
        prefill: DeploymentHandle | None,
    ) -> None:
        from alora_serve.model import resolve_model

        keep_servers_local()
        base = resolve_model(engine.model)
        catalog = Catalog.from_library(library, base.name).subset(intrinsics)
        self.engine = self.base_engine = await Engine.start(engine, catalog.adapters())
        self.transfer = None
        if prefill is not None:
            self.transfer = attach_to_prefill(self.engine, HandlePrefillClient(prefill), node_id())
        self.runner = IntrinsicRunner(self.engine, catalog)
        started = time.perf_counter()
        self.warmed_up = list(await self.runner.warm_up())
        if not self.engine.merged:
            await self.warm_up_base()
            self.warmed_up.append("base model")
        self.warm_up_s = time.perf_counter() - started
        collectors = [self.engine.metrics_collector()]
        if self.transfer is not None:
            collectors.append(TransferCollector(lambda: self.transfer.counts))
        self._metrics_task = asyncio.create_task(RayMetricsBridge(collectors).publish_forever())

    async def run_many(self, call: IntrinsicsCall) -> list[IntrinsicResult]:
        return await self.runner.run_many(
            call.intrinsics, call.request, call.tenant, call.arguments
        )

    async def prefill(self, call: IntrinsicsCall) -> int:
        return await self.runner.prefill(call.intrinsics, call.request, call.tenant, call.arguments)

    async def invoke(
        self, adapter: str, prompt: Sequence[int], options: SamplingOptions, tenant: str
    ) -> Generation:
        """One adapter on raw prompt tokens (no intrinsic I/O processing)."""
        return await self.engine.invoke(adapter, prompt, options, tenant)

    def stats(self) -> dict[str, Any]:
        transfer = vars(self.transfer.counts) if self.transfer is not None else None
        return {
            **replica_identity(),
            "transfer": transfer,
            # base-model prompt tokens computed here (pulled blocks are not computed)
            "computed_base_tokens": (
                transfer["recomputed_tokens"] if transfer else self.engine.prefixes.filled_tokens
            ),
            "in_flight": self.engine.in_flight,
            # first-use costs paid before serving
            "warm_up": {"warmed": self.warmed_up, "seconds": self.warm_up_s},
        }

    def __del__(self) -> None:
        with contextlib.suppress(AttributeError):  # the constructor may have failed
            self._metrics_task.cancel()
            self.engine.close()
