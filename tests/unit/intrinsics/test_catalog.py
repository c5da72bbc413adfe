"""Finding intrinsics in adapter libraries (both of IBM's layouts), without an engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alora_serve.intrinsics.catalog import (
    Catalog,
    CatalogError,
    UnknownIntrinsicError,
    find_adapter_dir,
)
from alora_serve.intrinsics.io_config import IOConfigError

BASE = "SmolLM2-135M-Instruct"


def adapter(path: Path, invocation: list[int] | None = (1, 2)) -> Path:
    """A structurally valid PEFT adapter directory (weights are not read here)."""
    path.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}
    if invocation:
        config["alora_invocation_tokens"] = list(invocation)
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"")
    return path


def test_both_layouts_and_alora_first(tmp_path: Path) -> None:
    newer = adapter(tmp_path / "answerability" / BASE / "alora")
    adapter(tmp_path / "answerability" / BASE / "lora", invocation=None)
    older = adapter(tmp_path / "uncertainty" / "lora" / BASE.lower(), invocation=None)
    adapter(tmp_path / "citations" / "other-base" / "alora")  # another base model: skipped
    assert find_adapter_dir(tmp_path / "answerability", BASE) == newer
    assert find_adapter_dir(tmp_path / "uncertainty", BASE) == older
    assert find_adapter_dir(tmp_path / "citations", BASE) is None

    catalog = Catalog.from_library(tmp_path, BASE)
    assert catalog.names() == ["answerability", "uncertainty"]
    assert catalog.get("answerability").adapter.kind == "alora"
    assert catalog.get("uncertainty").adapter.kind == "lora"
    with pytest.raises(UnknownIntrinsicError, match=r"'citations'; installed: \['answ"):
        catalog.get("citations")


def test_description_lists_arguments_and_schemas(tmp_path: Path) -> None:
    adapter(tmp_path / "requirement_check" / BASE / "alora")
    (entry,) = Catalog.from_library(tmp_path, BASE).describe()
    assert entry.arguments == ["requirement"]
    assert entry.requires_documents is False
    assert entry.response_format["enum"] == ["yes", "no"]
    assert entry.result_schema["required"] == ["requirement_likelihood"]
    assert "path" not in entry.model_dump_json()  # never the server's paths


def test_an_adapters_own_io_yaml_wins(tmp_path: Path) -> None:
    path = adapter(tmp_path / "answerability" / BASE / "alora")
    (path / "io.yaml").write_text(
        'model: ~\nresponse_format: \'{"type": "string", "enum": ["y", "n"]}\'\n'
        "transformations: ~\ninstruction: 'Is it? {topic}'\n"
    )
    intrinsic = Catalog.from_library(tmp_path, BASE).get("answerability")
    assert intrinsic.config.instruction == "Is it? {topic}"
    assert intrinsic.describe().result_schema == {"type": "string", "enum": ["y", "n"]}


def test_unusable_libraries_are_refused_with_the_reason(tmp_path: Path) -> None:
    adapter(tmp_path / "my_intrinsic" / BASE / "alora")
    with pytest.raises(CatalogError, match=r"no io\.yaml and 'my_intrinsic' is not a built-in"):
        Catalog.from_library(tmp_path, BASE)
    with pytest.raises(CatalogError, match="not a directory"):
        Catalog.from_library(tmp_path / "missing", BASE)
    broken = adapter(tmp_path / "other" / "answerability" / BASE / "alora")
    (broken / "io.yaml").write_text("model: ~\nresponse_format: ~\ntransformations: [{type: x}]")
    with pytest.raises(IOConfigError, match="unknown transformation 'x'"):
        Catalog.from_library(tmp_path / "other", BASE)
