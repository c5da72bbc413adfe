"""A training run's resumable state: the adapter so far, the optimizer, where the run
is, and the random state, replaced as a whole (an interrupted save leaves the last)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alora_serve.fsutil import atomic_directory
from alora_serve.training.examples import TrainingInputError

STATE = "state.json"
OPTIMIZER = "optimizer.pt"
ADAPTER = "adapter"


class CheckpointMismatchError(TrainingInputError):
    """A checkpoint left by a run with other data or settings."""


@dataclass
class Progress:
    run: str  # what the run trains on and how (``TrainConfig.run_id``)
    epoch: int = 0
    position: int = 0  # examples of this epoch done
    losses: list[float] = field(default_factory=list)  # per optimizer step
    seconds: float = 0.0  # spent training, across resumptions


def save(directory: Path, peft_model: Any, optimizer: Any, progress: Progress) -> None:
    import torch

    with atomic_directory(directory) as scratch:
        peft_model.save_pretrained(scratch / ADAPTER, safe_serialization=True)
        torch.save(
            {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
            | ({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
            scratch / OPTIMIZER,
        )
        (scratch / STATE).write_text(json.dumps(asdict(progress)))


def check(directory: Path, run: str) -> None:
    """Refuse a checkpoint at ``directory`` that another run left."""
    if (directory / STATE).is_file() and json.loads((directory / STATE).read_text())["run"] != run:
        raise CheckpointMismatchError(
            f"{directory} holds a checkpoint of a run with other data or settings; "
            "train with the same ones to resume, or remove it to start afresh"
        )


def load(directory: Path, run: str, peft_model: Any, optimizer: Any) -> Progress | None:
    """The saved progress of ``run``, its adapter weights and optimizer restored; None if
    there is none."""
    if not (directory / STATE).is_file():
        return None
    check(directory, run)
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(directory / ADAPTER / "adapter_model.safetensors")
    set_peft_model_state_dict(peft_model, weights)
    saved = torch.load(directory / OPTIMIZER, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    if "cuda_rng" in saved:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return Progress(**json.loads((directory / STATE).read_text()))
