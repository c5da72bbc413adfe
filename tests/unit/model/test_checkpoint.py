from __future__ import annotations

import json
from pathlib import Path

import pytest

from alora_serve.model.checkpoint import (
    MANIFEST_NAME,
    ModelError,
    load_checkpoint,
    write_manifest,
)

FIX = "do the documented thing"


def test_valid_checkpoint_loads(tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint, fix=FIX)
    assert checkpoint.model_type == "llama"
    assert [p.name for p in checkpoint.weight_files] == ["model.safetensors"]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: (p / "config.json").unlink(), "config.json is missing"),
        (lambda p: (p / "config.json").write_text("{not json"), "config.json is not valid JSON"),
        (lambda p: (p / "config.json").write_text("{}"), "no 'model_type'"),
        (lambda p: (p / "tokenizer.json").unlink(), "no tokenizer"),
        (lambda p: (p / "model.safetensors").unlink(), "no *.safetensors weights"),
        (
            lambda p: (p / "model.safetensors").write_bytes(
                (p / "model.safetensors").read_bytes()[:-40]
            ),
            "corrupt or truncated",
        ),
    ],
)
def test_damaged_checkpoint_names_problem_and_fix(tiny_checkpoint: Path, damage, problem) -> None:
    damage(tiny_checkpoint)
    with pytest.raises(ModelError) as err:
        load_checkpoint(tiny_checkpoint, fix=FIX)
    assert problem in str(err.value)
    assert FIX in str(err.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such directory"):
        load_checkpoint(tmp_path / "absent", fix=FIX)


def test_sharded_index_with_missing_shard(tiny_checkpoint: Path) -> None:
    index = {"weight_map": {"w": "model.safetensors", "v": "model-00002.safetensors"}}
    (tiny_checkpoint / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match=r"model-00002\.safetensors"):
        load_checkpoint(tiny_checkpoint, fix=FIX)


def test_manifest_detects_size_change(tiny_checkpoint: Path) -> None:
    write_manifest(tiny_checkpoint, model="tiny")
    load_checkpoint(tiny_checkpoint, fix=FIX, verify_hashes=True)
    (tiny_checkpoint / "tokenizer.json").write_text('{"changed": true}')
    with pytest.raises(ModelError, match=r"tokenizer\.json has"):
        load_checkpoint(tiny_checkpoint, fix=FIX)


def test_manifest_hash_check_catches_same_size_corruption(tiny_checkpoint: Path) -> None:
    write_manifest(tiny_checkpoint, model="tiny")
    (tiny_checkpoint / "tokenizer.json").write_text("[]")  # same 2 bytes as "{}"
    load_checkpoint(tiny_checkpoint, fix=FIX)  # sizes still match
    with pytest.raises(ModelError, match="sha256"):
        load_checkpoint(tiny_checkpoint, fix=FIX, verify_hashes=True)


def test_manifest_lists_every_file(tiny_checkpoint: Path) -> None:
    write_manifest(tiny_checkpoint, model="tiny")
    manifest = json.loads((tiny_checkpoint / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {"config.json", "tokenizer.json", "model.safetensors"}
