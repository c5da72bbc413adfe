"""The owner's view of the KV store: prefixes of token sequences, leased and filled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alora_serve.kv.orders import LoadOrder, SaveOrder
from alora_serve.kv.store.block_pool import BlockPool
from alora_serve.kv.store.hashing import BlockKey, block_keys, key_tag, namespace_seed


@dataclass(frozen=True)
class PrefixLease:
    """Pinned, readable base KV of a token prefix. Release it when done."""

    keys: tuple[BlockKey, ...]
    slots: tuple[int, ...]
    num_tokens: int
    computed_tokens: int = 0  # of these, computed to grant this lease (0: found stored)

    def load_order(self) -> LoadOrder:
        return LoadOrder(
            num_tokens=self.num_tokens,
            slots=self.slots,
            tags=tuple(key_tag(k) for k in self.keys),
        )


@dataclass(frozen=True)
class FillPlan:
    """A prefix with some blocks missing: reserved slots a base prefill must write."""

    keys: tuple[BlockKey, ...]
    slots: tuple[int, ...]
    missing: tuple[int, ...]  # block indices to save
    num_tokens: int
    block_size: int

    def save_order(self) -> SaveOrder:
        """Save the missing blocks; load the stored blocks before the first missing one
        rather than computing them again."""
        head = self.missing[0] if self.missing else len(self.keys)
        preload = None
        if head:
            preload = LoadOrder(
                num_tokens=head * self.block_size,
                slots=self.slots[:head],
                tags=tuple(key_tag(k) for k in self.keys[:head]),
            )
        return SaveOrder(
            blocks=self.missing,
            slots=tuple(self.slots[i] for i in self.missing),
            tags=tuple(key_tag(self.keys[i]) for i in self.missing),
            preload=preload,
        )


class PrefixStore:
    """Content-addressed prefixes over a BlockPool, namespaced by model and tenant."""

    def __init__(self, pool: BlockPool, block_size: int, model_fingerprint: str) -> None:
        self.pool = pool
        self.block_size = block_size
        self._fingerprint = model_fingerprint

    def keys_for(self, tokens: Sequence[int], tenant: str) -> tuple[BlockKey, ...]:
        seed = namespace_seed(self._fingerprint, tenant)
        return tuple(block_keys(tokens, self.block_size, seed))

    def lease(self, keys: Sequence[BlockKey], num_tokens: int) -> PrefixLease | None:
        """Pin the whole prefix if every block is readable, else None (nothing pinned)."""
        self.pool.expire()
        if self.pool.num_ready_prefix(keys) < len(keys):
            return None
        return PrefixLease(tuple(keys), tuple(self.pool.pin(keys)), num_tokens)

    def plan_fill(self, keys: Sequence[BlockKey], num_tokens: int) -> FillPlan:
        """Pin the readable blocks and reserve the rest. The caller makes sure no other
        fill has any of these keys reserved (PrefixManager waits for such fills)."""
        ready = self.pool.num_ready_prefix
        present = [i for i, key in enumerate(keys) if ready([key]) == 1]
        missing = sorted(set(range(len(keys))) - set(present))
        present_slots = self.pool.pin([keys[i] for i in present])
        try:
            missing_slots = self.pool.reserve([keys[i] for i in missing])
        except Exception:
            self.pool.unpin([keys[i] for i in present])
            raise
        slots = dict(zip(present, present_slots, strict=True))
        slots.update(zip(missing, missing_slots, strict=True))
        return FillPlan(
            keys=tuple(keys),
            slots=tuple(slots[i] for i in range(len(keys))),
            missing=tuple(missing),
            num_tokens=num_tokens,
            block_size=self.block_size,
        )

    def commit(self, plan: FillPlan) -> PrefixLease:
        self.pool.commit([plan.keys[i] for i in plan.missing])
        return PrefixLease(plan.keys, plan.slots, plan.num_tokens)

    def abort(self, plan: FillPlan) -> None:
        missing = set(plan.missing)
        self.pool.abort([plan.keys[i] for i in plan.missing])
        self.pool.unpin([k for i, k in enumerate(plan.keys) if i not in missing])

    def release(self, lease: PrefixLease) -> None:
        self.pool.unpin(lease.keys)
