"""An async engine over vLLM's AsyncLLM: chat rendering, generation, usage accounting."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from alora_serve.engine.config import EngineConfig
from alora_serve.engine.types import ChatMessage, Generation, SamplingOptions, Usage
from alora_serve.model import ModelCheckpoint, resolve_model


class Engine:
    """One running vLLM engine. Create with ``await Engine.start(config)``."""

    def __init__(self, config: EngineConfig, checkpoint: ModelCheckpoint, llm) -> None:
        self.config = config
        self.checkpoint = checkpoint
        self._llm = llm
        self.tokenizer = llm.get_tokenizer()

    @classmethod
    async def start(cls, config: EngineConfig) -> Engine:
        checkpoint = resolve_model(config.model)
        from vllm.v1.engine.async_llm import AsyncLLM

        llm = AsyncLLM.from_engine_args(_engine_args(config, checkpoint))
        return cls(config, checkpoint, llm)

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Prompt tokens for the next assistant turn, through the model's chat template."""
        if not messages:
            raise ValueError("a chat needs at least one message")
        text = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=False
        )
        # The template already spells out every special token; encode it verbatim.
        return self.tokenizer.encode(text, add_special_tokens=False)

    async def chat(self, messages: Sequence[ChatMessage], options: SamplingOptions) -> Generation:
        return await self.generate(self.render_chat(messages), options)

    async def generate(
        self, prompt_token_ids: Sequence[int], options: SamplingOptions
    ) -> Generation:
        from vllm.inputs import TokensPrompt

        prompt = TokensPrompt(prompt_token_ids=list(prompt_token_ids))
        final = None
        async for output in self._llm.generate(
            prompt, _sampling_params(options), request_id=uuid.uuid4().hex
        ):
            final = output
        return _to_generation(final)

    async def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            # Drop it now: AsyncLLM.__del__ shuts down again, which fails noisily if it
            # only runs during interpreter teardown.
            self._llm = None


def _engine_args(config: EngineConfig, checkpoint: ModelCheckpoint):
    from vllm.engine.arg_utils import AsyncEngineArgs

    # vLLM-CPU binds OpenMP threads to all cores by default; "auto" is right for a
    # dedicated machine. Respect an explicit setting.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")
    return AsyncEngineArgs(
        model=str(checkpoint.path),
        dtype=config.dtype,
        max_model_len=config.max_model_len,
        block_size=config.block_size,
        kv_cache_memory_bytes=config.kv_cache_bytes,
        gpu_memory_utilization=config.memory_fraction,
        max_num_seqs=config.max_num_seqs,
        enforce_eager=config.enforce_eager,
        seed=config.seed,
        disable_log_stats=True,
    )


def _sampling_params(options: SamplingOptions):
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        seed=options.seed,
        logprobs=options.logprobs,
        ignore_eos=options.ignore_eos,
    )


def _to_generation(output) -> Generation:
    completion = output.outputs[0]
    logprobs = None
    if completion.logprobs is not None:
        logprobs = tuple(
            {token: entry.logprob for token, entry in step.items()} for step in completion.logprobs
        )
    return Generation(
        text=completion.text,
        token_ids=tuple(completion.token_ids),
        finish_reason=completion.finish_reason,
        usage=Usage(
            prompt_tokens=len(output.prompt_token_ids),
            reused_prompt_tokens=output.num_cached_tokens or 0,
            generated_tokens=len(completion.token_ids),
        ),
        logprobs=logprobs,
    )
