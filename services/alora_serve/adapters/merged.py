"""A checkpoint with an adapter merged into the base weights (W + scale * B @ A).

A decode worker computes only adapter-active tokens (base KV before s comes from the
prefill service), so a worker for one intrinsic can run the adapter merged: no LoRA
kernels, about base-model cost. The merge is done in float32 with PEFT; the merged
weights differ from PEFT's unmerged computation only by float rounding (the tolerance
is tested and stated in docs/architecture.md). Made once per (base, adapter) content,
atomically, in the cache.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from alora_serve.adapters.spec import AdapterSpec
from alora_serve.adapters.vllm_copy import vllm_lora_dir
from alora_serve.fsutil import atomic_directory
from alora_serve.model import ModelCheckpoint, load_checkpoint
from alora_serve.paths import cache_root

_TOKENIZER_AND_TEMPLATE = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "generation_config.json",
)


def merged_checkpoint(
    base: ModelCheckpoint, adapter: AdapterSpec, progress: Callable[[str], None] = print
) -> ModelCheckpoint:
    lora_dir = vllm_lora_dir(adapter)  # content-addressed, without the aLoRA field
    digest = hashlib.sha256(f"{base.identity()}|{lora_dir.name}".encode()).hexdigest()[:16]
    dest = cache_root() / "merged" / f"{adapter.name}-{digest}"
    fix = f"delete {dest} and start again"
    if not (dest / "config.json").is_file():
        progress(f"Merging adapter {adapter.name!r} into {base.name} (float32) ...")
        with atomic_directory(dest) as scratch:
            _merge(base.path, lora_dir, scratch)
        progress(f"Merged adapter {adapter.name!r} -> {dest}")
    return load_checkpoint(dest, fix=fix)


def _merge(base_dir: Path, lora_dir: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, lora_dir).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    for name in _TOKENIZER_AND_TEMPLATE:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, out / name)
