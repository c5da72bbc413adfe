"""Model checkpoints: validating local HF checkpoints and preparing the embedded default."""

from alora_serve.model.checkpoint import ModelCheckpoint, ModelError, load_checkpoint
from alora_serve.model.embedded import EMBEDDED_MODEL_NAME, embedded_model_dir, prepare_embedded
from alora_serve.model.resolve import resolve_model

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "ModelCheckpoint",
    "ModelError",
    "embedded_model_dir",
    "load_checkpoint",
    "prepare_embedded",
    "resolve_model",
]
