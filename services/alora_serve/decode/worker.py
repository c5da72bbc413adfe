"""A decode worker: an engine with its intrinsics' adapters, running intrinsic calls.

Given a prefill service, its adapter calls get base KV from it through the transfer
layer; without one (the colocated topology) its own base model fills its store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import Collector

from alora_serve.engine import Engine, EngineConfig, Generation, SamplingOptions
from alora_serve.engine.metrics import VLLMCollector
from alora_serve.intrinsics.call import IntrinsicResult, IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.model import resolve_model
from alora_serve.transfer.grants import PrefillClient
from alora_serve.transfer.metrics import TransferCollector
from alora_serve.transfer.remote_prefixes import RemotePrefixes, attach_to_prefill


class DecodeWorker:
    def __init__(
        self, engine: Engine, runner: IntrinsicRunner, transfer: RemotePrefixes | None
    ) -> None:
        self.engine = engine
        self.runner = runner
        self.transfer = transfer  # None: colocated, the engine computes its own base KV

    @classmethod
    async def start(
        cls,
        engine: EngineConfig,
        library: str,
        intrinsics: Sequence[str],
        prefill: PrefillClient | None,
        host: str,
    ) -> DecodeWorker:
        """An engine with ``intrinsics`` from ``library``; ``prefill``: where base KV
        comes from (``host``: this worker's node, to read same-host grants in place)."""
        base = resolve_model(engine.model)
        catalog = Catalog.from_library(library, base.name).subset(intrinsics)
        started = await Engine.start(engine, catalog.adapters())
        transfer = attach_to_prefill(started, prefill, host) if prefill is not None else None
        return cls(started, IntrinsicRunner(started, catalog), transfer)

    async def warm_up(self) -> list[str]:
        """Run every intrinsic once before serving (first-use costs); what was warmed."""
        return list(await self.runner.warm_up())

    async def run_many(self, call: IntrinsicsCall) -> list[IntrinsicResult]:
        return await self.runner.run_many(call)

    async def prefill(self, call: IntrinsicsCall) -> int:
        return await self.runner.prefill(call)

    async def invoke(
        self, adapter: str, prompt: Sequence[int], options: SamplingOptions, tenant: str
    ) -> Generation:
        """One adapter on raw prompt tokens (no intrinsic I/O processing)."""
        return await self.engine.invoke(adapter, prompt, options, tenant)

    def collectors(self) -> list[Collector]:
        collectors: list[Collector] = [self.engine.kv.collector()]
        if self.transfer is not None:
            collectors.append(TransferCollector(lambda: self.transfer.counts))
            collectors.append(self.transfer.latency)
        if self.engine.config.vllm_metrics:
            collectors.append(VLLMCollector())
        return collectors

    def stats(self) -> dict[str, Any]:
        transfer = vars(self.transfer.counts) if self.transfer is not None else None
        return {
            "transfer": transfer,
            # base-model prompt tokens computed here (pulled blocks are not computed)
            "computed_base_tokens": (
                transfer["recomputed_tokens"] if transfer else self.engine.kv.filled_tokens
            ),
            "in_flight": self.engine.in_flight,
        }

    def close(self) -> None:
        self.engine.close()
