from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from alora_serve.adapters import AdapterError, read_adapter, validate_for_base, vllm_lora_dir
from alora_serve.adapters.spec import ADAPTER_CONFIG, ALORA_FIELD
from alora_serve.paths import CACHE_ENV

HIDDEN, RANK = 16, 4
BASE_SHAPES = {
    "model.layers.0.self_attn.q_proj.weight": (HIDDEN, HIDDEN),
    "model.layers.0.mlp.up_proj.weight": (2 * HIDDEN, HIDDEN),
    "model.norm.weight": (HIDDEN,),
}


class FakeTokenizer:
    vocab = ("<pad>", "<|im_start|>", "answer", "ability", "\n", "\ufffd", " \n ")

    def __len__(self) -> int:
        return len(self.vocab)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)


def write_adapter(path: Path, *, invocation=(1, 2, 3, 4), rank=RANK, **config) -> Path:
    path.mkdir(parents=True)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file(
        {
            f"{prefix}.lora_A.weight": torch.zeros(rank, HIDDEN),
            f"{prefix}.lora_B.weight": torch.zeros(HIDDEN, rank),
        },
        str(path / "adapter_model.safetensors"),
    )
    cfg = {
        "peft_type": "LORA",
        "r": rank,
        "target_modules": ["q_proj"],
        "base_model_name_or_path": "org/SmolLM2-135M-Instruct",
        ALORA_FIELD: list(invocation),
    }
    cfg.update(config)
    (path / ADAPTER_CONFIG).write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    return path


def validate(spec, max_rank: int = 64, base_name: str = "SmolLM2-135M-Instruct") -> None:
    validate_for_base(
        spec,
        base_name=base_name,
        base_weight_shapes=BASE_SHAPES,
        tokenizer=FakeTokenizer(),
        max_rank=max_rank,
    )


def test_alora_and_lora_are_told_apart(tmp_path: Path) -> None:
    alora = read_adapter(write_adapter(tmp_path / "a"))
    lora = read_adapter(write_adapter(tmp_path / "l", **{ALORA_FIELD: None}))
    assert (alora.kind, alora.invocation_tokens, alora.rank) == ("alora", (1, 2, 3, 4), RANK)
    assert (lora.kind, lora.invocation_tokens) == ("lora", None)
    validate(alora)
    validate(lora)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"peft_type": "PREFIX_TUNING"}, "only LORA"),
        ({"r": 0}, "rank r must be a positive integer"),
        ({ALORA_FIELD: []}, "non-empty list"),
        ({ALORA_FIELD: ["<|im_start|>"]}, "non-empty list of token ids"),
    ],
)
def test_bad_configs_are_named(tmp_path: Path, config, problem) -> None:
    with pytest.raises(AdapterError, match=problem):
        read_adapter(write_adapter(tmp_path / "x", **config))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"adapter_config\.json is missing"):
        read_adapter(tmp_path)
    path = write_adapter(tmp_path / "w")
    (path / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match=r"adapter_model\.safetensors is missing"):
        read_adapter(path)


@pytest.mark.parametrize(
    ("kwargs", "validate_kwargs", "problem"),
    [
        ({}, {"max_rank": 2}, "exceeds the engine's max_lora_rank 2"),
        ({}, {"base_name": "granite-3.3-8b"}, "trained for base model"),
        ({"target_modules": ["q_proj", "w_gate"]}, {}, r"\['w_gate'\] do not exist"),
        ({"invocation": (1, 99)}, {}, "outside the vocabulary"),
        ({"invocation": (5,)}, {}, "not a usable string"),
        ({"invocation": (6,)}, {}, "not a usable string"),
    ],
)
def test_validation_against_base(tmp_path: Path, kwargs, validate_kwargs, problem) -> None:
    spec = read_adapter(write_adapter(tmp_path / "a", **kwargs))
    with pytest.raises(AdapterError, match=problem):
        validate(spec, **validate_kwargs)


def test_weight_shape_mismatch_is_named(tmp_path: Path) -> None:
    path = write_adapter(tmp_path / "a")
    save_file(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(
                RANK, HIDDEN + 1
            )
        },
        str(path / "adapter_model.safetensors"),
    )
    with pytest.raises(AdapterError, match="the base model needs"):
        validate(read_adapter(path))


def test_vllm_copy_drops_alora_field_and_leaves_user_dir_alone(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = write_adapter(tmp_path / "a")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    spec = read_adapter(path)
    copy = vllm_lora_dir(spec)
    assert ALORA_FIELD not in json.loads((copy / ADAPTER_CONFIG).read_text())
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert vllm_lora_dir(spec) == copy  # content-addressed: reused
