"""The base model's turns, served by the deployment whose engine owns conversations (the
prefill service, or the colocated worker)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from alora_serve.engine import ChatMessage, Engine, Generation, SamplingOptions
from alora_serve.engine.types import GenerationChunk


class ServesBaseTurns:
    """Mixin of deployments: ``base_engine`` runs the base model."""

    base_engine: Engine

    async def chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, tenant: str
    ) -> Generation:
        return await self.base_engine.chat(messages, options, tenant)

    async def chat_stream(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, tenant: str
    ) -> AsyncIterator[GenerationChunk]:
        stream = self.base_engine.chat_stream(messages, options, tenant)
        async with contextlib.aclosing(stream):  # a cancelled call aborts the generation now
            async for chunk in stream:
                yield chunk
