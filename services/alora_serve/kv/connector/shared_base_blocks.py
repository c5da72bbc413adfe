"""vLLM block hashes under which aLoRA requests share the base model's blocks.

vLLM keys every block of a LoRA request by the adapter, so k adapter calls on one
conversation would each get the conversation's base KV copied into blocks of their own.
For an aLoRA request (one carrying a ``LoadOrder`` for its prefix [0, s)), blocks that
end at or before s hold base-model KV: here they are keyed as the base model's blocks of
the same tokens (and the same cache salt, i.e. tenant), so they are shared with the base
request that computed them and with every other adapter call on that prefix. Blocks past
s hold adapter KV: they stay keyed by the adapter, and also by s (the adapter's KV of a
token depends on where its activation began).

vLLM exposes no hook for block keys; this wraps ``generate_block_hash_extra_keys``, which
its request block hasher looks up at call time. It must be installed in the EngineCore
process before requests arrive: the scheduler-side connector does that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alora_serve.kv.orders import LoadOrder, from_params

ExtraKeys = Callable[[Any, int, int, int], tuple[tuple[Any, ...] | None, int]]

_LORA_KEY = "lora"  # vLLM's extra key for a request's adapter: ("lora", name, path)
ALORA_START_KEY = "alora_start"


def alora_start(request: Any) -> int | None:
    """s for an aLoRA request whose base KV [0, s) is supplied, else None. (Requests on a
    merged-adapter engine carry no LoRA but are aLoRA requests all the same.)"""
    if request.mm_features:
        return None
    order = from_params(request.kv_transfer_params)
    return order.num_tokens if isinstance(order, LoadOrder) else None


def sharing_base_blocks(vllm_extra_keys: ExtraKeys) -> ExtraKeys:
    def extra_keys(
        request: Any, start_token: int, end_token: int, start_mm_idx: int
    ) -> tuple[tuple[Any, ...] | None, int]:
        keys, next_mm_idx = vllm_extra_keys(request, start_token, end_token, start_mm_idx)
        start = alora_start(request)
        if start is None:
            return keys, next_mm_idx
        if end_token <= start:
            base = tuple(k for k in keys or () if not _is_lora_key(k))
            return base or None, next_mm_idx
        return (*(keys or ()), (ALORA_START_KEY, start)), next_mm_idx

    extra_keys.wrapped = vllm_extra_keys  # type: ignore[attr-defined]
    return extra_keys


def install() -> None:
    """Make this process's vLLM key aLoRA requests' base blocks as base blocks (idempotent)."""
    from vllm.v1.core import kv_cache_utils

    current = kv_cache_utils.generate_block_hash_extra_keys
    if not hasattr(current, "wrapped"):
        kv_cache_utils.generate_block_hash_extra_keys = sharing_base_blocks(current)


def _is_lora_key(key: Any) -> bool:
    return isinstance(key, tuple) and bool(key) and key[0] == _LORA_KEY
