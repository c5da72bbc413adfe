"""The base model's turns, served by the deployment whose engine owns conversations (the
prefill service, or the colocated worker)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from alora_serve.engine import ChatMessage, Engine, Generation, SamplingOptions
from alora_serve.engine.types import GenerationChunk, TemplateKwargs


class ServesBaseTurns:
    """Mixin of deployments: ``base_engine`` runs the base model."""

    base_engine: Engine

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> Generation:
        return await self.base_engine.chat(messages, options, tenant, template_kwargs)

    async def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str,
        template_kwargs: TemplateKwargs | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        stream = self.base_engine.chat_stream(messages, options, tenant, template_kwargs)
        async with contextlib.aclosing(stream):  # a cancelled call aborts the generation now
            async for chunk in stream:
                yield chunk

    async def warm_up_base(self) -> float:
        """Run the base model once before serving (first-use costs); seconds taken."""
        started = time.perf_counter()
        question = [ChatMessage(role="user", content="What is the capital of France?")]
        prompt = self.base_engine.render_chat(question)
        await self.base_engine.warm_up(None, prompt, SamplingOptions(max_tokens=4))
        return time.perf_counter() - started
