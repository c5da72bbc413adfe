"""The real vLLM engine on the real model (SmolLM2-135M-Instruct, fp32, CPU)."""

from __future__ import annotations

import asyncio
import math

import pytest

from alora_serve.engine import ChatMessage, SamplingOptions

pytestmark = pytest.mark.engine

FRANCE = [ChatMessage(role="user", content="What is the capital of France?")]


async def test_greedy_chat_answers(engine) -> None:
    result = await engine.chat(FRANCE, SamplingOptions(max_tokens=16))
    assert "Paris" in result.text
    assert result.finish_reason == "stop"
    assert result.usage.generated_tokens == len(result.token_ids) > 0


async def test_greedy_is_deterministic_and_logprobs_are_consistent(engine) -> None:
    options = SamplingOptions(max_tokens=8, logprobs=3, ignore_eos=True)
    first, second = await asyncio.gather(engine.chat(FRANCE, options), engine.chat(FRANCE, options))
    assert first.token_ids == second.token_ids
    assert len(first.token_ids) == 8
    for token, step in zip(first.token_ids, first.logprobs, strict=True):
        # Greedy: the chosen token is the most likely one, with a real probability.
        assert step.chosen.token_id == token == step.top[0].token_id
        assert step.chosen.logprob == max(t.logprob for t in step.top)
        assert -math.inf < step.chosen.logprob <= 0.0
        assert step.chosen.text == engine.tokenizer.decode([token])


async def test_usage_reports_prompt_tokens_and_prefix_reuse(engine) -> None:
    long_chat = [ChatMessage(role="user", content="Tell me about rivers. " * 60)]
    prompt = engine.render_chat(long_chat)
    cold = await engine.generate(prompt, SamplingOptions(max_tokens=2))
    warm = await engine.generate(prompt, SamplingOptions(max_tokens=2))
    assert cold.usage.prompt_tokens == warm.usage.prompt_tokens == len(prompt)
    # vLLM's prefix cache is block-granular: the repeat reuses every full block.
    block = engine.config.block_size
    assert warm.usage.reused_prompt_tokens >= (len(prompt) - 1) // block * block > 0
    assert warm.usage.computed_prompt_tokens < cold.usage.computed_prompt_tokens


async def test_chat_template_is_the_models(engine) -> None:
    prompt = engine.tokenizer.decode(engine.render_chat(FRANCE))
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
