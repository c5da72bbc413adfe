"""Shared fixtures. The real vLLM engine starts once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from alora_serve.adapters import read_adapter
from alora_serve.engine import Engine, EngineConfig
from alora_serve.model import resolve_model
from tests.support.peft_adapters import make_adapter

# name -> (seed, invocation string or None for a plain LoRA)
TEST_ADAPTERS = {
    "answerability": (1, "<|im_start|>answerability\n"),
    "certainty": (2, "<|im_start|>certainty\n"),
    "answerability_lora": (1, None),  # the same weights as "answerability", always on
}
# Small enough that a few long conversations force LRU evictions (~45 blocks of 128).
TEST_KV_STORE_GIB = 0.25


@pytest.fixture(scope="session")
def base_dir() -> Path:
    return resolve_model(None).path


@pytest.fixture(scope="session")
def tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_dir)


@pytest.fixture(scope="session")
def invocations(tokenizer) -> dict[str, list[int]]:
    return {
        name: tokenizer.encode(text, add_special_tokens=False)
        for name, (_, text) in TEST_ADAPTERS.items()
        if text is not None
    }


@pytest.fixture(scope="session")
def adapter_dirs(base_dir: Path, invocations, tmp_path_factory) -> dict[str, Path]:
    """PEFT adapters with seeded random weights, made at test time."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: make_adapter(
            base_dir, root / name, seed=seed, invocation_tokens=invocations.get(name)
        )
        for name, (seed, _) in TEST_ADAPTERS.items()
    }


@pytest.fixture(scope="session")
async def engine(adapter_dirs: dict[str, Path]):
    """A real vLLM engine on the prepared embedded model (fp32, CPU) with the test adapters."""
    config = EngineConfig(max_model_len=4096, kv_cache_gib=1.0, kv_store_gib=TEST_KV_STORE_GIB)
    adapters = [read_adapter(path, name) for name, path in adapter_dirs.items()]
    running = await Engine.start(config, adapters)
    yield running
    await running.shutdown()
