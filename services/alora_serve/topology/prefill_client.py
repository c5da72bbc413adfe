"""The prefill service as a decode worker reaches it across Ray: a Serve handle."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ray.serve.handle import DeploymentHandle

from alora_serve.topology.handles import answer
from alora_serve.topology.routing import session_id
from alora_serve.transfer.grants import LeaseGrant

PREFILL_CALL_TIMEOUT_S = 120.0  # a lease may wait for the base prefill of a long prefix
# A conversation's first tokens (its system prompt and opening turn) pick its prefill replica.
AFFINITY_TOKENS = 512


class HandlePrefillClient:
    """The prefill service as a decode worker reaches it: a Serve handle, with timeouts.

    With several prefill replicas, a conversation's calls keep to one replica (session
    affinity on the conversation's opening tokens): its leases, reads and releases reach
    the replica that holds its blocks, and its turns grow one store.
    """

    def __init__(self, handle: DeploymentHandle, timeout_s: float = PREFILL_CALL_TIMEOUT_S):
        self._handle = handle
        self._timeout_s = timeout_s
        self._sessions: dict[int, str] = {}  # lease id -> session of its replica

    async def lease(self, tokens: Sequence[int], tenant: str) -> LeaseGrant:
        session = session_id("", tenant, repr(list(tokens[:AFFINITY_TOKENS])))
        grant = await self._call(session, "lease", list(tokens), tenant, traced=True)
        self._sessions[grant.lease_id] = session
        return grant

    async def release(self, lease_id: int, unusable: bool = False) -> None:
        await self._call(self._sessions.pop(lease_id, ""), "release", lease_id, unusable)

    async def renew(self, lease_ids: Sequence[int]) -> list[int]:
        """Each lease renewed on the replica that granted it."""
        by_session: dict[str, list[int]] = {}
        for lease_id in lease_ids:
            by_session.setdefault(self._sessions.get(lease_id, ""), []).append(lease_id)
        lost = await asyncio.gather(
            *(self._call(session, "renew", ids) for session, ids in by_session.items())
        )
        return [lease_id for ids in lost for lease_id in ids]

    async def read_blocks(self, lease_id: int, blocks: Sequence[int]) -> torch.Tensor:
        session = self._sessions.get(lease_id, "")
        return torch.from_numpy(
            np.array(await self._call(session, "read_blocks", lease_id, list(blocks)))
        )

    async def _call(self, session: str, method: str, *args: Any, traced: bool = False) -> Any:
        return await answer(
            self._handle,
            method,
            *args,
            timeout_s=self._timeout_s,
            session=session or None,
            traced=traced,
        )
