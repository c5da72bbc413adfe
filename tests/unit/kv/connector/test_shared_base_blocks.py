"""vLLM's real block hasher with our keys: aLoRA requests share base blocks, never adapter
blocks, and never across tenants."""

from __future__ import annotations

import pytest

from alora_serve.kv.connector.shared_base_blocks import sharing_base_blocks
from alora_serve.kv.orders import LoadOrder, to_params

BLOCK = 4
PROMPT = list(range(100, 118))  # 4 full blocks and a partial one


@pytest.fixture
def hasher(monkeypatch):
    from vllm.utils.hashing import sha256
    from vllm.v1.core import kv_cache_utils

    kv_cache_utils.init_none_hash(sha256)
    original = kv_cache_utils.generate_block_hash_extra_keys
    monkeypatch.setattr(
        kv_cache_utils, "generate_block_hash_extra_keys", sharing_base_blocks(original)
    )
    return kv_cache_utils.get_request_block_hasher(BLOCK, sha256)


def block_hashes(hasher, adapter: str | None = None, start: int | None = None, salt="tenant:a"):
    from vllm.lora.request import LoRARequest
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    extra = None
    if start is not None:
        order = LoadOrder(start, tuple(range(-(-start // BLOCK))), (0,) * -(-start // BLOCK))
        extra = {"kv_transfer_params": to_params(order)}
    lora = LoRARequest(adapter, abs(hash(adapter)) % 1000 + 1, f"/a/{adapter}") if adapter else None
    request = Request(
        "r",
        PROMPT,
        SamplingParams(max_tokens=1, extra_args=extra),
        None,
        lora_request=lora,
        cache_salt=salt,
        block_hasher=hasher,
    )
    return request.block_hashes


def test_alora_blocks_before_s_are_the_base_models_blocks(hasher) -> None:
    base = block_hashes(hasher)
    first = block_hashes(hasher, "answerability", start=10)
    second = block_hashes(hasher, "uncertainty", start=10)
    assert len(base) == len(first) == 4
    # Blocks 0 and 1 end at or before s = 10: base KV, shared by everyone.
    assert first[:2] == base[:2] == second[:2]
    # Block 2 holds tokens 8..11, two of them computed by the adapter.
    assert len({base[2], first[2], second[2]}) == 3


def test_adapter_blocks_depend_on_where_the_adapter_started(hasher) -> None:
    at_8 = block_hashes(hasher, "answerability", start=8)
    at_12 = block_hashes(hasher, "answerability", start=12)
    assert at_8[:2] == at_12[:2]
    assert at_8[2] != at_12[2]


def test_plain_lora_requests_keep_vllms_keys(hasher) -> None:
    base = block_hashes(hasher)
    lora = block_hashes(hasher, "answerability")
    assert not set(base) & set(lora)


def test_tenants_never_share_blocks(hasher) -> None:
    a = block_hashes(hasher, "answerability", start=16, salt="tenant:a")
    b = block_hashes(hasher, "answerability", start=16, salt="tenant:b")
    assert not set(a) & set(b)


def test_merged_adapter_requests_are_alora_requests(hasher) -> None:
    """A merged-adapter engine's requests carry no LoRA; past s their KV is adapter KV."""
    base = block_hashes(hasher)
    merged = block_hashes(hasher, start=10)
    assert merged[:2] == base[:2]
    assert not set(merged[2:]) & set(base)
