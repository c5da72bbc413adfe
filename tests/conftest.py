"""Shared fixtures. The real vLLM engine starts once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from alora_serve.adapters import read_adapter
from alora_serve.engine import Engine, EngineConfig
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.embedded_library import shipped_intrinsics, trained_adapter
from alora_serve.intrinsics.runner import IntrinsicRunner
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from tests.support.peft_adapters import make_adapter, trained_name

# name -> (seed, invocation string or None for a plain LoRA)
TEST_ADAPTERS = {
    "probe_a": (1, "<|im_start|>probe_a\n"),
    "probe_b": (2, "<|im_start|>probe_b\n"),
    "probe_lora": (1, None),  # the same weights as "probe_a", always on
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
def catalog(tmp_path_factory) -> Catalog:
    """Every built-in intrinsic as a seeded aLoRA adapter; one in the older layout."""
    checkpoint = resolve_model(None)
    root = make_library(
        checkpoint, tmp_path_factory.mktemp("intrinsics"), older_layout={"uncertainty"}
    )
    return Catalog.from_library(root, checkpoint.name)


@pytest.fixture(scope="session")
async def engine(adapter_dirs: dict[str, Path], catalog: Catalog):
    """A real vLLM engine on the prepared embedded model (fp32, CPU) with the test adapters
    and the intrinsics."""
    config = EngineConfig(
        max_model_len=4096, kv_cache_gib=1.0, kv_store_gib=TEST_KV_STORE_GIB, max_loras=8
    )
    adapters = [read_adapter(path, name) for name, path in adapter_dirs.items()]
    model = resolve_model(None).name
    trained = [
        read_adapter(trained_adapter(name, model), trained_name(name))
        for name in shipped_intrinsics(model)
    ]
    running = await Engine.start(config, [*adapters, *catalog.adapters(), *trained])
    yield running
    await running.shutdown()


@pytest.fixture
def runner(engine: Engine, catalog: Catalog) -> IntrinsicRunner:
    return IntrinsicRunner(engine, catalog)
