"""Preparing the embedded model from the real GGUF, including a run killed mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alora_serve.fsutil import PARTIAL_MARK
from alora_serve.model import EMBEDDED_MODEL_NAME, ModelError, resolve_model
from alora_serve.model.checkpoint import load_checkpoint
from alora_serve.paths import CACHE_ENV


def _prepare(cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "alora_serve.cli", "prepare-model"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, CACHE_ENV: str(cache), "PYTHONUNBUFFERED": "1"},
    )


def test_killed_preparation_then_full_preparation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    models = tmp_path / "models"

    killed = _prepare(tmp_path)
    for line in killed.stdout:
        if line.startswith("[3/4]"):  # writing the checkpoint
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert not (models / EMBEDDED_MODEL_NAME).exists()
    with pytest.raises(ModelError, match="prepare-model"):
        resolve_model(None)

    done = _prepare(tmp_path)
    output = done.stdout.read()
    assert done.wait(timeout=600) == 0, output
    for stage in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "Model ready"):
        assert stage in output
    assert not [p for p in models.iterdir() if PARTIAL_MARK in p.name]

    checkpoint = load_checkpoint(models / EMBEDDED_MODEL_NAME, fix="-", verify_hashes=True)
    assert "quantization_config" not in checkpoint.config
    assert checkpoint.config["num_hidden_layers"] == 30
    assert checkpoint.config["dtype"] == "float32"
    assert "<|im_start|>" in (checkpoint.path / "chat_template.jinja").read_text()
    _assert_transformers_answers(checkpoint.path)


def _assert_transformers_answers(path: Path) -> None:
    """The converted checkpoint is a working model outside vLLM too."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])
