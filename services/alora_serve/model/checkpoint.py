"""Validation of a local Hugging Face checkpoint directory before an engine loads it.

An engine that starts on a half-written or corrupt model fails minutes later with an
obscure error (or, worse, serves garbage). We check up front, cheaply, and name the fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

MANIFEST_NAME = "alora-serve-manifest.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
_SAMPLE_BYTES = 1 << 20


class ModelError(RuntimeError):
    """A model directory that cannot be served; the message says what to do."""


@dataclass(frozen=True)
class ModelCheckpoint:
    """A validated local HF checkpoint."""

    path: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def name(self) -> str:
        return self.path.name

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape, read from the safetensors headers only."""
        shapes: dict[str, tuple[int, ...]] = {}
        for weights in self.weight_files:
            with safe_open(str(weights), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        return shapes

    def identity(self) -> str:
        """A cheap identity of the weights: the config, and every weight file's size and
        first and last MiB (hashing whole files takes minutes on big models; different
        weights of one architecture differ in these samples)."""
        digest = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for weights in self.weight_files:
            size = weights.stat().st_size
            digest.update(f"{weights.name}:{size}".encode())
            with weights.open("rb") as f:
                digest.update(f.read(_SAMPLE_BYTES))
                f.seek(max(size - _SAMPLE_BYTES, 0))
                digest.update(f.read(_SAMPLE_BYTES))
        return f"{self.name}@{digest.hexdigest()[:16]}"

    def kv_geometry(self) -> tuple[int, int, int]:
        """(layers, KV heads, head dim) of a decoder-only transformer config."""
        c = self.config
        heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or c["hidden_size"] // heads
        return c["num_hidden_layers"], c.get("num_key_value_heads", heads), head_dim


def load_checkpoint(path: Path | str, *, fix: str, verify_hashes: bool = False) -> ModelCheckpoint:
    """Check that ``path`` holds a complete HF checkpoint; raise ModelError naming ``fix``."""
    path = Path(path).expanduser().resolve()

    def fail(problem: str) -> ModelError:
        return ModelError(f"Model at {path}: {problem}. Fix: {fix}")

    if not path.is_dir():
        raise fail("no such directory")
    config = _read_json(path / "config.json", fail)
    if "model_type" not in config:
        raise fail("config.json has no 'model_type' (not a Hugging Face model config)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise fail(f"no tokenizer (expected one of {', '.join(TOKENIZER_FILES)})")
    weight_files = _weight_files(path, fail)
    for weights in weight_files:
        _check_safetensors_header(weights, fail)
    manifest_path = path / MANIFEST_NAME
    if manifest_path.exists():
        _check_manifest(path, _read_json(manifest_path, fail), verify_hashes, fail)
    return ModelCheckpoint(path=path, config=config, weight_files=weight_files)


def write_manifest(path: Path, **info: Any) -> None:
    """Record size and sha256 of every file so later loads can detect damage."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(path.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }
    (path / MANIFEST_NAME).write_text(json.dumps({"format": 1, **info, "files": files}, indent=2))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path, fail) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(f"{path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{path.name} is not valid JSON ({exc})") from None


def _weight_files(path: Path, fail) -> tuple[Path, ...]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(_read_json(index, fail).get("weight_map", {}).values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing or not shards:
            raise fail(f"weight shards listed in {index.name} are missing: {missing or 'all'}")
        return tuple(path / s for s in shards)
    files = tuple(sorted(path.glob("*.safetensors")))
    if not files:
        raise fail("no *.safetensors weights (save with save_pretrained(safe_serialization=True))")
    return files


def _check_safetensors_header(weights: Path, fail) -> None:
    # safe_open parses the header and checks it against the file size, so a truncated
    # file is caught without reading the tensor data.
    try:
        with safe_open(str(weights), framework="pt") as f:
            if not list(f.keys()):
                raise fail(f"{weights.name} holds no tensors")
    except ModelError:
        raise
    except Exception as exc:
        raise fail(f"{weights.name} is corrupt or truncated ({exc})") from None


def _check_manifest(path: Path, manifest: dict, verify_hashes: bool, fail) -> None:
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise fail(f"{name} is missing (listed in {MANIFEST_NAME})")
        if file.stat().st_size != expected["size"]:
            raise fail(f"{name} has {file.stat().st_size} bytes, expected {expected['size']}")
        if verify_hashes and file_sha256(file) != expected["sha256"]:
            raise fail(f"{name} does not match its recorded sha256")
