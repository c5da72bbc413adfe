"""Preparation logic with the conversion replaced by a toy writer (the real one is in
tests/integration/test_model_preparation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alora_serve.model import ModelError, embedded, resolve_model
from alora_serve.paths import CACHE_ENV
from tests.unit.conftest import write_tiny_checkpoint


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(embedded, "find_gguf", lambda: tmp_path / "fake.gguf")
    return tmp_path


def test_unprepared_default_model_names_the_command(cache: Path) -> None:
    with pytest.raises(ModelError, match="alora-serve prepare-model"):
        resolve_model(None)


def test_interrupted_conversion_leaves_no_loadable_model(cache, monkeypatch) -> None:
    def convert_then_die(gguf, out, progress):
        write_tiny_checkpoint(out)
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_convert", convert_then_die)
    with pytest.raises(KeyboardInterrupt):
        embedded.prepare_embedded(progress=lambda _: None)
    assert not embedded.embedded_model_dir().exists()
    with pytest.raises(ModelError):
        resolve_model("embedded")


def test_valid_copy_is_reused_and_damaged_copy_rebuilt(cache, monkeypatch) -> None:
    calls = []

    def convert(gguf, out, progress):
        calls.append(out)
        write_tiny_checkpoint(out)

    monkeypatch.setattr(embedded, "_convert", convert)
    first = embedded.prepare_embedded(progress=lambda _: None)
    embedded.prepare_embedded(progress=lambda _: None)
    assert len(calls) == 1

    (first.path / "model.safetensors").write_bytes(b"garbage")
    embedded.prepare_embedded(progress=lambda _: None)
    assert len(calls) == 2
    resolve_model(None)
