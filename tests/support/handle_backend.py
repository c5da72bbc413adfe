"""The gateway's backend reached through a Serve handle of a running ingress, for a second
gateway started in the test process (e.g. with TLS) in front of the same real engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from alora_serve.engine import ChatMessage, SamplingOptions
from alora_serve.engine.types import GenerationChunk
from alora_serve.intrinsics.call import IntrinsicResult, IntrinsicsCall


class IngressHandleBackend:
    def __init__(self, ingress) -> None:  # a DeploymentHandle of IntrinsicsIngress
        self._ingress = ingress

    async def run_many(
        self, call: IntrinsicsCall, received_at: float | None = None
    ) -> list[IntrinsicResult]:
        # received_at is this process's clock: the remote ingress measures from arrival.
        return await self._ingress.run_many.remote(call)

    async def prefill(self, call: IntrinsicsCall) -> int:
        return await self._ingress.prefill.remote(call)

    async def chat_stream(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, tenant: str
    ) -> AsyncIterator[GenerationChunk]:
        stream = self._ingress.options(stream=True).chat_stream.remote(messages, options, tenant)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            stream.cancel()
