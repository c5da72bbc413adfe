"""aLoRA served on vLLM equals PEFT's aLoRA token for token (SmolLM2, fp32)."""

from __future__ import annotations

import asyncio

import pytest

from alora_serve.engine import SamplingOptions
from tests.support.conversations import conversation, render
from tests.support.peft_adapters import peft_greedy

pytestmark = pytest.mark.engine

NEW_TOKENS = 16
GREEDY = SamplingOptions(max_tokens=NEW_TOKENS, ignore_eos=True)
LENGTHS = (200, 1000, 1800)


@pytest.fixture(scope="module")
def prompts(tokenizer, invocations) -> dict[int, list[int]]:
    """Conversations of about 200, 1000 and 1800 tokens, with the invocation appended."""
    return {
        n: render(tokenizer, conversation(tokenizer, n)) + invocations["probe_a"] for n in LENGTHS
    }


@pytest.fixture(scope="module")
def peft_reference(base_dir, adapter_dirs, prompts) -> dict[int, list[int]]:
    return {
        n: peft_greedy(base_dir, adapter_dirs["probe_a"], prompt, NEW_TOKENS)
        for n, prompt in prompts.items()
    }


@pytest.mark.parametrize("length", LENGTHS)
async def test_alora_equals_peft(engine, prompts, peft_reference, invocations, length) -> None:
    prompt = prompts[length]
    result = await engine.invoke("probe_a", prompt, GREEDY)
    assert list(result.token_ids) == peft_reference[length]
    start = len(prompt) - len(invocations["probe_a"])
    # A repeat finds everything before the invocation stored: only the invocation is
    # computed (the first call computed the base KV it needed, and said so).
    again = await engine.invoke("probe_a", prompt, GREEDY)
    assert list(again.token_ids) == peft_reference[length]
    assert again.usage.reused_prompt_tokens == start


@pytest.mark.parametrize("length", LENGTHS)
async def test_plain_lora_differs(engine, prompts, peft_reference, invocations, length) -> None:
    """The same weights as an always-on LoRA give other tokens, so the test above can
    tell aLoRA from LoRA."""
    result = await engine.invoke("probe_lora", prompts[length], GREEDY)
    assert list(result.token_ids) != peft_reference[length]
    # LoRA may reuse only its own KV (vLLM's cache, per adapter): it computes the
    # conversation itself, not just the invocation.
    assert result.usage.computed_prompt_tokens > len(invocations["probe_a"])


async def test_concurrent_mixed_batch_is_exact(
    engine, tokenizer, invocations, base_dir, adapter_dirs
) -> None:
    conv_a = render(tokenizer, conversation(tokenizer, 700, skip=1))
    conv_b = render(tokenizer, conversation(tokenizer, 900, skip=2))
    calls = {
        "probe_a": conv_a + invocations["probe_a"],
        "probe_b": conv_b + invocations["probe_b"],
    }
    expected = {
        name: peft_greedy(base_dir, adapter_dirs[name], prompt, NEW_TOKENS)
        for name, prompt in calls.items()
    }
    base_alone = [await engine.generate(conv, GREEDY) for conv in (conv_a, conv_b)]

    results = await asyncio.gather(
        engine.generate(conv_a, GREEDY),
        engine.invoke("probe_a", calls["probe_a"], GREEDY),
        engine.generate(conv_b, GREEDY),
        engine.invoke("probe_b", calls["probe_b"], GREEDY),
    )
    assert list(results[1].token_ids) == expected["probe_a"]
    assert list(results[3].token_ids) == expected["probe_b"]
    assert results[0].token_ids == base_alone[0].token_ids
    assert results[2].token_ids == base_alone[1].token_ids
