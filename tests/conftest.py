"""Shared fixtures. The real vLLM engine starts once per test session."""

from __future__ import annotations

import pytest
from alora_serve.engine import Engine, EngineConfig


@pytest.fixture(scope="session")
async def engine():
    """A real vLLM engine on the prepared embedded model (fp32, CPU)."""
    running = await Engine.start(EngineConfig(max_model_len=4096, kv_cache_gib=1.0))
    yield running
    await running.shutdown()
