"""What an engine loads before vLLM starts: its adapters checked against the base model,
the checkpoint vLLM runs (the base model, or one adapter merged into it), and the size
of its KV store's arena."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alora_serve.adapters import AdapterSpec, validate_for_base, vllm_lora_dir
from alora_serve.adapters.merged import merged_checkpoint
from alora_serve.engine.config import EngineConfig
from alora_serve.kv.store.arena import ArenaSpec, arena_path
from alora_serve.model import ModelCheckpoint

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class LoadedAdapter:
    spec: AdapterSpec
    lora_request: Any  # vllm.lora.request.LoRARequest; None when merged into the weights


@dataclass(frozen=True)
class ServedModel:
    checkpoint: ModelCheckpoint  # what vLLM runs
    adapters: dict[str, LoadedAdapter]
    max_lora_rank: int | None  # None: no LoRA


def validate_adapters(
    adapters: Sequence[AdapterSpec], checkpoint: ModelCheckpoint, config: EngineConfig
) -> None:
    if not adapters:
        return
    from transformers import AutoTokenizer

    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise ValueError(f"adapter names must be unique, got {names}")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    shapes = checkpoint.weight_shapes()
    for spec in adapters:
        validate_for_base(
            spec,
            base_name=checkpoint.name,
            base_weight_shapes=shapes,
            tokenizer=tokenizer,
            max_rank=config.max_lora_rank,
        )


def served_model(
    config: EngineConfig, base: ModelCheckpoint, adapters: Sequence[AdapterSpec]
) -> ServedModel:
    if config.adapter_mode == "merged":
        if len(adapters) != 1:
            raise ValueError(
                f"adapter_mode 'merged' runs exactly one adapter, got {len(adapters)}; "
                "use adapter_mode 'lora' to serve several from one engine"
            )
        (spec,) = adapters
        return ServedModel(
            merged_checkpoint(base, spec), {spec.name: LoadedAdapter(spec, None)}, None
        )
    from vllm.lora.request import LoRARequest

    loaded = {
        spec.name: LoadedAdapter(spec, LoRARequest(spec.name, i, str(vllm_lora_dir(spec))))
        for i, spec in enumerate(adapters, start=1)
    }
    return ServedModel(base, loaded, _round_rank(max((s.rank for s in adapters), default=None)))


def arena_spec(config: EngineConfig, checkpoint: ModelCheckpoint) -> ArenaSpec:
    layers, kv_heads, head_dim = checkpoint.kv_geometry()
    block_numel = 2 * kv_heads * head_dim * config.block_size  # K and V
    path = arena_path(uuid.uuid4().hex[:8])
    return ArenaSpec.sized(path, config.kv_store_bytes, layers, block_numel, config.dtype)


def _round_rank(rank: int | None) -> int | None:
    if rank is None:
        return None
    return next(r for r in LORA_RANKS if r >= rank)
