"""The invariants that make served aLoRA trustworthy, on the real engine."""

from __future__ import annotations

import pytest

from alora_serve.adapters import InvocationNotFoundError
from alora_serve.engine import SamplingOptions
from alora_serve.engine.errors import UnknownAdapterError
from tests.support.conversations import conversation, render
from tests.support.peft_adapters import peft_greedy

pytestmark = pytest.mark.engine

NEW_TOKENS = 16
GREEDY = SamplingOptions(max_tokens=NEW_TOKENS, ignore_eos=True)


@pytest.fixture(autouse=True)
def no_leaked_pins(engine):
    """Every lease taken during a test is released by its end (exact block accounting)."""
    yield
    assert engine.kv.stats().pinned_blocks == 0


@pytest.fixture(scope="module")
def reference(base_dir, adapter_dirs):
    def greedy(adapter: str, prompt: list[int]) -> list[int]:
        return peft_greedy(base_dir, adapter_dirs[adapter], prompt, NEW_TOKENS)

    return greedy


def prefix_keys(engine, prompt: list[int], invocation: list[int], tenant: str = "default"):
    return engine.kv.prefixes.store.keys_for(prompt[: len(prompt) - len(invocation)], tenant)


async def test_missing_base_kv_is_computed_first(engine, tokenizer, invocations, reference):
    inv = invocations["probe_a"]
    prompt = render(tokenizer, conversation(tokenizer, 600, skip=3)) + inv
    blocks = len(prefix_keys(engine, prompt, inv))
    before = engine.kv.stats()
    result = await engine.invoke("probe_a", prompt, GREEDY)
    after = engine.kv.stats()
    assert after.misses - before.misses == blocks  # base prefill of [0, s) first
    assert list(result.token_ids) == reference("probe_a", prompt)

    again = await engine.invoke("probe_a", prompt, GREEDY)
    assert engine.kv.stats().misses == after.misses  # now served from the store
    assert again.token_ids == result.token_ids


async def test_evicted_prefix_is_recomputed_exactly(engine, tokenizer, invocations, reference):
    inv = invocations["probe_a"]
    prompt = render(tokenizer, conversation(tokenizer, 900, skip=4)) + inv
    expected = reference("probe_a", prompt)
    assert list((await engine.invoke("probe_a", prompt, GREEDY)).token_ids) == expected

    keys = prefix_keys(engine, prompt, inv)
    evictions = engine.kv.stats().evictions
    skip = 5
    while engine.kv.prefixes.store.pool.num_ready_prefix(keys) == len(keys):  # fill the store
        other = render(tokenizer, conversation(tokenizer, 1800, skip=skip)) + inv
        await engine.invoke("probe_a", other, SamplingOptions(max_tokens=1))
        skip += 1
    stats = engine.kv.stats()
    assert stats.evictions > evictions
    assert stats.used_blocks <= stats.capacity_blocks

    result = await engine.invoke("probe_a", prompt, GREEDY)
    assert list(result.token_ids) == expected


async def test_corrupted_store_bytes_are_never_served(engine, tokenizer, invocations, reference):
    conv = render(tokenizer, conversation(tokenizer, 500, skip=6))
    stored = conv + invocations["probe_a"]
    await engine.invoke("probe_a", stored, SamplingOptions(max_tokens=1))

    # Someone overwrites a stored block: its content tag no longer matches the key.
    keys = prefix_keys(engine, stored, invocations["probe_a"])
    lease = engine.kv.prefixes.store.lease(keys, 0)
    engine.kv.arena.tags[lease.slots[1]] = 424242
    engine.kv.prefixes.store.release(lease)

    # Another adapter on the same conversation, with vLLM's own cache emptied: the prefix
    # must come from the store.
    await engine.reset_local_prefix_cache()
    prompt = conv + invocations["probe_b"]
    retries = engine.kv_load_retries
    result = await engine.invoke("probe_b", prompt, GREEDY)
    assert engine.kv_load_retries == retries + 1  # the worker refused the bytes
    assert list(result.token_ids) == reference("probe_b", prompt)  # recomputed, exact


async def test_adapter_kv_never_reaches_base_other_adapter_or_other_start(
    engine, tokenizer, invocations, reference
):
    conv = render(tokenizer, conversation(tokenizer, 700, skip=7))
    answer_inv, probe_b_inv = invocations["probe_a"], invocations["probe_b"]
    base_before = await engine.generate(conv + answer_inv, GREEDY)

    await engine.invoke("probe_a", conv + answer_inv, GREEDY)
    # vLLM's prefix cache now holds adapter KV for tokens >= s of this prompt.
    base_after = await engine.generate(conv + answer_inv, GREEDY)
    assert base_after.token_ids == base_before.token_ids

    other_adapter = conv + probe_b_inv
    result = await engine.invoke("probe_b", other_adapter, GREEDY)
    assert list(result.token_ids) == reference("probe_b", other_adapter)

    later_start = conv + answer_inv + tokenizer.encode("Please answer.", add_special_tokens=False)
    later_start += answer_inv  # the LAST occurrence is the start
    result = await engine.invoke("probe_a", later_start, GREEDY)
    assert list(result.token_ids) == reference("probe_a", later_start)


async def test_tenants_never_share_kv(engine, tokenizer, invocations):
    inv = invocations["probe_a"]
    prompt = render(tokenizer, conversation(tokenizer, 400, skip=8)) + inv
    blocks = len(prefix_keys(engine, prompt, inv))
    options = SamplingOptions(max_tokens=2)
    acme = await engine.invoke("probe_a", prompt, options, tenant="acme")
    before = engine.kv.stats().misses
    globex = await engine.invoke("probe_a", prompt, options, tenant="globex")
    assert engine.kv.stats().misses - before == blocks
    assert globex.token_ids == acme.token_ids


async def test_prompt_without_invocation_is_rejected(engine, tokenizer):
    prompt = render(tokenizer, conversation(tokenizer, 300, skip=9))
    with pytest.raises(InvocationNotFoundError, match="probe_a"):
        await engine.invoke("probe_a", prompt, GREEDY)
    assert (await engine.generate(prompt, SamplingOptions(max_tokens=2))).usage.generated_tokens


async def test_a_start_that_is_not_the_invocation_is_rejected(engine, tokenizer, invocations):
    conv = render(tokenizer, conversation(tokenizer, 300, skip=9))
    prompt = conv + invocations["probe_a"]
    with pytest.raises(InvocationNotFoundError, match="probe_a"):
        await engine.invoke("probe_a", prompt, GREEDY, start=len(conv) - 1)


async def test_unknown_adapter_names_the_loaded_ones(engine):
    with pytest.raises(UnknownAdapterError, match="probe_b"):
        await engine.invoke("no_such_adapter", [1, 2, 3], GREEDY)


async def test_base_turn_kv_is_reused_by_the_same_tenants_calls_only(
    engine, tokenizer, invocations
):
    conv = render(tokenizer, conversation(tokenizer, 500, skip=11))
    prompt = conv + invocations["probe_a"]
    once = SamplingOptions(max_tokens=1)
    await engine.generate(conv, once, tenant="acme")  # the base model's turn

    def computed_by(call):
        async def run() -> int:
            before = engine.kv.filled_tokens
            await call
            return engine.kv.filled_tokens - before

        return run()

    # The intrinsic call's fill finds the turn's blocks in vLLM's cache ...
    assert (
        await computed_by(engine.invoke("probe_a", prompt, once, "acme"))
        <= engine.config.block_size
    )
    # ... another tenant's does not.
    assert await computed_by(engine.invoke("probe_a", prompt, once, "globex")) == len(conv)
