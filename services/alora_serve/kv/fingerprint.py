"""Compatibility of KV blocks between two engines.

Raw KV bytes mean something only to an engine with the same base weights, dtype, block
size, attention backend and KV layout. Each engine's worker computes its fingerprint from
what it actually runs and publishes it beside its store; a consumer compares before it
asks for bytes and its worker compares again before it copies any: a mismatch is refused
with the differing fields named, never copied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from alora_serve.errors import InternalError


class IncompatibleKVError(InternalError):
    """Two engines' KV blocks cannot be exchanged; the message names what differs."""


@dataclass(frozen=True)
class KVFingerprint:
    model: str  # identity of the *base* weights whose KV the blocks hold
    dtype: str
    block_size: int
    attention_backend: str
    layers: int
    block_elements: int  # elements of one layer's KV block (K and V)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KVFingerprint:
        return cls(**json.loads(text))

    def differences(self, other: KVFingerprint) -> list[str]:
        return [
            f"{f.name}: {getattr(self, f.name)!r} here, {getattr(other, f.name)!r} there"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def require_compatible(self, other: KVFingerprint, other_name: str) -> None:
        if problems := self.differences(other):
            raise IncompatibleKVError(
                f"KV blocks of {other_name} are incompatible with this engine "
                f"({'; '.join(problems)}); run both with the same base model, dtype, "
                "block size and attention backend"
            )
