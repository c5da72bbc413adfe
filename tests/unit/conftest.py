from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def write_tiny_checkpoint(path: Path) -> Path:
    """A structurally valid HF checkpoint with a toy tensor (no real model)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "tokenizer.json").write_text("{}")
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path / "model.safetensors"))
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return write_tiny_checkpoint(tmp_path / "model")
