"""A prefill engine lends base KV to decode engines (in process; the Ray Serve deployments
run the same classes in separate processes: test_serve_topology.py)."""

from __future__ import annotations

import dataclasses

import pytest

from alora_serve.adapters import read_adapter
from alora_serve.engine import Engine, EngineConfig, SamplingOptions
from alora_serve.engine.errors import EngineError
from alora_serve.kv.fingerprint import IncompatibleKVError
from alora_serve.prefill.service import PrefillService
from alora_serve.transfer.remote_prefixes import PrefillUnavailableError, attach_to_prefill
from tests.support.conversations import conversation, render
from tests.support.peft_adapters import peft_greedy, peft_next_token_logprobs

pytestmark = pytest.mark.engine

NEW_TOKENS = 12
GREEDY = SamplingOptions(max_tokens=NEW_TOKENS, ignore_eos=True)
SMALL = dict(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.25)


@pytest.fixture(scope="module")
async def prefill_engine():
    engine = await Engine.start(EngineConfig(**SMALL))
    yield engine
    await engine.shutdown()


@pytest.fixture(scope="module")
def prefill(prefill_engine):
    return PrefillService(prefill_engine.kv, host="node-a")


@pytest.fixture(scope="module")
async def merged_engine(adapter_dirs):
    config = EngineConfig(**SMALL, adapter_mode="merged")
    engine = await Engine.start(config, [read_adapter(adapter_dirs["probe_a"], "probe_a")])
    yield engine
    await engine.shutdown()


@pytest.fixture
def decode_on(engine, prefill):
    """The session engine as a decode engine on a given host (restored afterwards)."""
    own = engine.prefix_source

    def attach(host: str, service=prefill):
        return attach_to_prefill(engine, service, host)

    yield attach
    engine.prefix_source = own


@pytest.fixture(autouse=True)
def no_leaked_leases(prefill):
    yield
    assert prefill.active_leases == 0
    assert prefill.kv.stats().pinned_blocks == 0


@pytest.fixture(scope="module")
def reference(base_dir, adapter_dirs):
    def greedy(adapter: str, prompt: list[int]) -> list[int]:
        return peft_greedy(base_dir, adapter_dirs[adapter], prompt, NEW_TOKENS)

    return greedy


def prompt_for(tokenizer, invocations, adapter: str, skip: int) -> list[int]:
    return render(tokenizer, conversation(tokenizer, 700, skip=skip)) + invocations[adapter]


async def test_same_host_reads_the_prefill_store_in_place(
    engine, prefill, decode_on, tokenizer, invocations, reference
):
    source = decode_on("node-a")
    prompt = prompt_for(tokenizer, invocations, "probe_a", skip=20)
    decode_fills, prefill_fills = engine.kv.fills, prefill.kv.fills

    result = await engine.invoke("probe_a", prompt, GREEDY)

    assert list(result.token_ids) == reference("probe_a", prompt)
    assert source.counts.in_place == 1 and source.counts.pulled_blocks == 0
    assert prefill.kv.fills == prefill_fills + 1  # the prefill engine computed
    assert engine.kv.fills == decode_fills  # the decode engine computed no base KV


async def test_other_host_pulls_the_blocks_once(
    engine, prefill, decode_on, tokenizer, invocations, reference
):
    source = decode_on("node-b")
    prompt = prompt_for(tokenizer, invocations, "probe_b", skip=21)
    blocks = -(-(len(prompt) - len(invocations["probe_b"])) // engine.config.block_size)

    first = await engine.invoke("probe_b", prompt, GREEDY)
    again = await engine.invoke("probe_b", prompt, GREEDY)

    assert list(first.token_ids) == reference("probe_b", prompt) == list(again.token_ids)
    assert source.counts.pulled_blocks == blocks
    assert source.counts.pulled_bytes == blocks * engine.kv.arena.spec.slot_bytes
    assert source.counts.local_hits == 1  # the second call used the pulled copy
    assert source.counts.recomputed == 0


async def test_failed_transfer_is_recomputed_exactly(
    engine, prefill, decode_on, tokenizer, invocations, reference
):
    class BrokenLink:
        lease, release = prefill.lease, prefill.release

        async def read_blocks(self, lease_id, blocks):
            raise ConnectionError("link down")

    source = decode_on("node-b", BrokenLink())
    prompt = prompt_for(tokenizer, invocations, "probe_a", skip=22)
    result = await engine.invoke("probe_a", prompt, GREEDY)
    assert list(result.token_ids) == reference("probe_a", prompt)
    assert source.counts.recomputed == 1


async def test_corrupted_prefill_bytes_are_recomputed_exactly(
    engine, prefill, decode_on, tokenizer, invocations, reference
):
    decode_on("node-a")
    prompt = prompt_for(tokenizer, invocations, "probe_b", skip=23)
    await prefill.store(prompt[: -len(invocations["probe_b"])], "default")
    grant = await prefill.lease(prompt[: -len(invocations["probe_b"])], "default")
    prefill.kv.arena.tags[grant.order.slots[0]] = 31337  # someone scribbles on a slot
    await prefill.release(grant.lease_id)

    retries = engine.kv_load_retries
    result = await engine.invoke("probe_b", prompt, GREEDY)
    assert engine.kv_load_retries == retries + 1
    assert list(result.token_ids) == reference("probe_b", prompt)


async def test_incompatible_prefill_is_refused_before_any_copy(
    engine, prefill, decode_on, tokenizer, invocations
):
    source = decode_on("node-a")
    source.fingerprint = dataclasses.replace(source.fingerprint, block_size=64)
    prompt = prompt_for(tokenizer, invocations, "probe_a", skip=24)
    with pytest.raises(IncompatibleKVError, match="block_size: 64 here, 128 there"):
        await engine.invoke("probe_a", prompt, GREEDY)


# Merged weights (W + scale * B @ A, rounded to float32 once) against PEFT computing the
# LoRA path separately: measured here, the top-5 logprobs differ by at most 4.6e-5
# (lora mode: 4.2e-5; vLLM and PEFT compute in different orders either way).
MERGED_LOGPROB_TOLERANCE = 2e-4


async def test_merged_adapter_matches_peft_within_float_rounding(
    engine, merged_engine, prefill, base_dir, adapter_dirs, tokenizer, invocations, reference
):
    source = attach_to_prefill(merged_engine, prefill, "node-a")
    prompt = prompt_for(tokenizer, invocations, "probe_a", skip=25)
    options = GREEDY.model_copy(update={"logprobs": 5})
    merged = await merged_engine.invoke("probe_a", prompt, options)
    assert list(merged.token_ids) == reference("probe_a", prompt)
    assert source.counts.in_place == 1

    expected = peft_next_token_logprobs(base_dir, adapter_dirs["probe_a"], prompt, merged.token_ids)
    lora = await engine.invoke("probe_a", prompt, options)  # the session engine: LoRA mode

    def worst(generation) -> float:
        return max(
            abs(t.logprob - reference_step[t.token_id].item())
            for step, reference_step in zip(generation.logprobs, expected, strict=True)
            for t in step.top
        )

    print(f"max |logprob - PEFT|: merged {worst(merged):.2e}, lora {worst(lora):.2e}")
    assert worst(merged) < MERGED_LOGPROB_TOLERANCE
    assert worst(lora) < MERGED_LOGPROB_TOLERANCE


async def test_merged_engine_never_computes_base_kv(merged_engine, prefill, tokenizer, invocations):
    class Down:
        async def lease(self, tokens, tenant):
            raise ConnectionError("prefill service restarting")

    attach_to_prefill(merged_engine, Down(), "node-a")
    prompt = prompt_for(tokenizer, invocations, "probe_a", skip=26)
    with pytest.raises(PrefillUnavailableError, match="cannot compute it"):
        await merged_engine.invoke("probe_a", prompt, GREEDY)
    with pytest.raises(EngineError, match="merged into its weights"):
        await merged_engine.generate(prompt, GREEDY)


async def test_next_turn_computes_only_its_new_tokens(prefill, prefill_engine, tokenizer):
    """The prefill of turn n+1 loads turn n's stored blocks (even once vLLM's own cache has
    dropped them) and computes only what follows."""
    messages = conversation(tokenizer, 700, skip=27)
    turn = render(tokenizer, messages)
    next_turn = render(tokenizer, [*messages, {"role": "user", "content": "And after that?"}])
    await prefill.store(turn, "default")
    await prefill_engine.reset_local_prefix_cache()  # only the store holds turn n now

    before = prefill.kv.filled_tokens
    await prefill.store(next_turn, "default")
    computed = prefill.kv.filled_tokens - before

    block = prefill_engine.config.block_size
    shared = next(
        (i for i, (a, b) in enumerate(zip(turn, next_turn, strict=False)) if a != b), len(turn)
    )
    stored_head = min(shared, len(turn) // block * block) // block * block
    assert stored_head > 0
    assert computed == len(next_turn) - stored_head
