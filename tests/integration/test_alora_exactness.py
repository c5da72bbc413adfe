"""aLoRA served on vLLM equals PEFT's aLoRA token for token (SmolLM2, fp32)."""

from __future__ import annotations

import asyncio

import pytest
import torch

from alora_serve.engine import SamplingOptions
from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.intrinsics.builtins import builtin_config
from alora_serve.intrinsics.embedded_library import shipped_intrinsics, trained_adapter
from alora_serve.intrinsics.synthetic_library import invocation_text
from alora_serve.model import EMBEDDED_MODEL_NAME, resolve_model
from alora_serve.training.encoding import Encoder
from alora_serve.training.mtrag import EXAMPLES
from tests.support.conversations import DATA, conversation, render
from tests.support.peft_adapters import peft_greedy, peft_kv, trained_name

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


# -- the trained intrinsics the embedded default serves ------------------------------------

SHIPPED = shipped_intrinsics(EMBEDDED_MODEL_NAME)


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request, tokenizer) -> tuple[str, list[list[int]]]:
    """(a shipped intrinsic, held-out MTRAG calls of it rendered as the server renders
    them: the conversation, then the invocation): the first of each label, one without
    documents if there is one, and one more."""
    name = request.param
    invocation = tokenizer.encode(invocation_text(name), add_special_tokens=False)
    encoder = Encoder(
        ChatRenderer(tokenizer), builtin_config(name), invocation, tokenizer.eos_token_id, 4096
    )
    held_out = EXAMPLES[name](DATA / "mtrag" / "mtrag_un_reference.jsonl")[1]
    firsts = {e.label: e for e in reversed(held_out)}.values()
    without_documents = [e for e in held_out if not e.request.documents][:1]
    picked = {e.source: e for e in (*firsts, *without_documents, held_out[5])}.values()
    calls = [encoder.encode(example) for example in picked]
    return name, [[*call.prefix, *call.suffix[: len(invocation)]] for call in calls]


def test_the_trained_adapter_leaves_the_base_kv_before_its_invocation(
    base_dir, tokenizer, shipped
) -> None:
    """PEFT with the trained weights: every layer's keys and values before the
    invocation are the base model's (what lets the server reuse them), and from it on
    they are not (the adapter acts there)."""
    name, prompts = shipped
    adapter = trained_adapter(name, resolve_model(None).name)
    invocation = len(tokenizer.encode(invocation_text(name), add_special_tokens=False))
    for prompt in prompts:
        start = len(prompt) - invocation
        with_adapter, base = peft_kv(base_dir, adapter, prompt)
        for (keys, values), (base_keys, base_values) in zip(with_adapter, base, strict=True):
            assert torch.equal(keys[:, :, :start], base_keys[:, :, :start])
            assert torch.equal(values[:, :, :start], base_values[:, :, :start])
        last_keys, base_last_keys = with_adapter[-1][0], base[-1][0]
        assert not torch.allclose(last_keys[:, :, start:], base_last_keys[:, :, start:])


async def test_the_trained_adapter_served_equals_peft(engine, base_dir, shipped) -> None:
    name, prompts = shipped
    adapter = trained_adapter(name, resolve_model(None).name)
    for prompt in prompts:
        served = await engine.invoke(
            trained_name(name), prompt, SamplingOptions(max_tokens=8, ignore_eos=True)
        )
        assert list(served.token_ids) == peft_greedy(base_dir, adapter, prompt, 8)
