"""Turn a user's model choice (embedded default or a directory) into a validated checkpoint."""

from __future__ import annotations

from alora_serve.model.checkpoint import ModelCheckpoint, load_checkpoint
from alora_serve.model.embedded import embedded_model_dir

EMBEDDED_ALIASES = frozenset({"", "embedded", "default"})


def resolve_model(spec: str | None) -> ModelCheckpoint:
    """``None``/``"embedded"`` -> the prepared default model; anything else is a directory."""
    if spec is None or spec in EMBEDDED_ALIASES:
        return load_checkpoint(
            embedded_model_dir(),
            fix="run `alora-serve prepare-model` (add --force to rebuild a damaged copy)",
        )
    return load_checkpoint(
        spec, fix="pass --model a complete local Hugging Face checkpoint directory"
    )
