"""PEFT adapter directories: reading and validating them against a base model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from safetensors import safe_open

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ALORA_FIELD = "alora_invocation_tokens"


class AdapterError(ValueError):
    """An adapter that cannot be served; the message names the problem."""


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    path: Path
    kind: Literal["alora", "lora"]
    rank: int
    target_modules: tuple[str, ...] | str
    base_model: str | None
    invocation_tokens: tuple[int, ...] | None
    config: dict[str, Any]

    @property
    def is_alora(self) -> bool:
        return self.kind == "alora"


def read_adapter(path: Path | str, name: str | None = None) -> AdapterSpec:
    """Parse a PEFT LoRA/aLoRA adapter directory (adapter_config.json + safetensors)."""
    path = Path(path).expanduser().resolve()
    name = name or path.name

    def fail(problem: str) -> AdapterError:
        return AdapterError(f"adapter {name!r} at {path}: {problem}")

    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text())
    except FileNotFoundError:
        raise fail(f"{ADAPTER_CONFIG} is missing (not a PEFT adapter directory)") from None
    except json.JSONDecodeError as exc:
        raise fail(f"{ADAPTER_CONFIG} is not valid JSON ({exc})") from None
    if config.get("peft_type") != "LORA":
        raise fail(f"peft_type is {config.get('peft_type')!r}; only LORA adapters are served")
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise fail(f"{ADAPTER_WEIGHTS} is missing (save with safe_serialization=True)")
    rank = config.get("r")
    if not isinstance(rank, int) or rank <= 0:
        raise fail(f"rank r must be a positive integer, got {rank!r}")
    invocation = config.get(ALORA_FIELD)
    if invocation is not None and (
        not isinstance(invocation, list)
        or not invocation
        or not all(isinstance(t, int) and t >= 0 for t in invocation)
    ):
        raise fail(f"{ALORA_FIELD} must be a non-empty list of token ids, got {invocation!r}")
    targets = config.get("target_modules") or ()
    return AdapterSpec(
        name=name,
        path=path,
        kind="alora" if invocation else "lora",
        rank=rank,
        target_modules=targets if isinstance(targets, str) else tuple(sorted(targets)),
        base_model=config.get("base_model_name_or_path"),
        invocation_tokens=tuple(invocation) if invocation else None,
        config=config,
    )


def validate_for_base(
    spec: AdapterSpec,
    *,
    base_name: str,
    base_weight_shapes: dict[str, tuple[int, ...]],
    tokenizer: Any,
    max_rank: int,
) -> None:
    """Check that ``spec`` fits the base model it is about to be served with."""

    def fail(problem: str) -> AdapterError:
        return AdapterError(f"adapter {spec.name!r} at {spec.path}: {problem}")

    if spec.rank > max_rank:
        raise fail(f"rank {spec.rank} exceeds the engine's max_lora_rank {max_rank}")
    if spec.base_model and _model_id(spec.base_model) != _model_id(base_name):
        raise fail(
            f"trained for base model {spec.base_model!r}, but the engine serves {base_name!r}"
        )
    modules = {key.rsplit(".", 2)[-2] for key in base_weight_shapes if key.endswith(".weight")}
    if not isinstance(spec.target_modules, str):
        unknown = sorted(set(spec.target_modules) - modules)
        if unknown:
            raise fail(f"target modules {unknown} do not exist in the base model")
    _check_weight_shapes(spec, base_weight_shapes, fail)
    if spec.invocation_tokens:
        _check_invocation(spec.invocation_tokens, tokenizer, fail)


def _check_weight_shapes(spec: AdapterSpec, base: dict[str, tuple[int, ...]], fail) -> None:
    with safe_open(str(spec.path / ADAPTER_WEIGHTS), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
            shape = tuple(f.get_slice(key).get_shape())
            if ".lora_A." in key and shape[0] != spec.rank:
                raise fail(f"{key} has shape {shape}, expected rank {spec.rank} rows")
            if ".lora_B." in key and shape[1] != spec.rank:
                raise fail(f"{key} has shape {shape}, expected rank {spec.rank} columns")
            base_key = _base_key(key)
            if base_key not in base:
                raise fail(f"{key} adapts {base_key}, which the base model does not have")
            out_dim, in_dim = base[base_key]
            expected = (spec.rank, in_dim) if ".lora_A." in key else (out_dim, spec.rank)
            if shape != expected:
                raise fail(f"{key} has shape {shape}, the base model needs {expected}")


def _check_invocation(tokens: tuple[int, ...], tokenizer: Any, fail) -> None:
    vocab = len(tokenizer)
    if max(tokens) >= vocab:
        raise fail(f"invocation token id {max(tokens)} is outside the vocabulary ({vocab})")
    text = tokenizer.decode(list(tokens))
    if not text.strip() or "\ufffd" in text:
        raise fail(f"invocation tokens {list(tokens)} decode to {text!r}, not a usable string")


def _base_key(adapter_key: str) -> str:
    # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
    #   -> model.layers.0.self_attn.q_proj.weight
    stem = adapter_key.split(".lora_")[0].removeprefix("base_model.model.")
    return f"{stem}.weight"


def _model_id(name: str) -> str:
    return Path(name.rstrip("/")).name.lower()
