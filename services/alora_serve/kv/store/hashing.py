"""Content addresses of KV blocks: a chained hash over token blocks.

Block i's key covers every token in blocks 0..i, the namespace (model fingerprint and
tenant) and nothing else, so equal keys mean equal base-model KV, and two tenants never
share a key. A partial last block hashes differently from the full block it grows into.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

BlockKey = bytes


def namespace_seed(*parts: str) -> BlockKey:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        encoded = part.encode()
        digest.update(struct.pack("<I", len(encoded)))
        digest.update(encoded)
    return digest.digest()


def block_keys(tokens: Sequence[int], block_size: int, seed: BlockKey) -> list[BlockKey]:
    """One key per (possibly partial, last) block of ``tokens``."""
    keys: list[BlockKey] = []
    parent = seed
    for start in range(0, len(tokens), block_size):
        chunk = tokens[start : start + block_size]
        digest = hashlib.blake2b(parent, digest_size=16)
        digest.update(struct.pack(f"<{len(chunk)}I", *chunk))
        parent = digest.digest()
        keys.append(parent)
    return keys


def key_tag(key: BlockKey) -> int:
    """A signed 64-bit tag of a key, stored beside each slot so readers can verify it."""
    return int.from_bytes(key[:8], "little", signed=True)
