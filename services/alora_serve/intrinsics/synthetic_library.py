"""An adapter library of seeded random aLoRA adapters for the built-in intrinsics.

Stand-ins for trained intrinsics on the embedded model (none exist for SmolLM2): the
results are schema-valid and exact but not meaningful. Used by tests, benchmarks and the
example pipeline.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from tqdm import tqdm

from alora_serve.adapters.synthetic import make_adapter
from alora_serve.fsutil import atomic_directory
from alora_serve.intrinsics.builtins import builtin_names
from alora_serve.model import ModelCheckpoint


def invocation_text(name: str) -> str:
    """SmolLM2's analogue of Granite's ``<|start_of_role|>NAME<|end_of_role|>``."""
    return f"<|im_start|>{name}\n"


def make_library(
    checkpoint: ModelCheckpoint,
    root: Path,
    names: Sequence[str] | None = None,
    *,
    first_seed: int = 100,
    older_layout: Collection[str] = (),
) -> Path:
    """Write ``root/<name>/<base>/alora`` (or the older ``root/<name>/alora/<base>`` for
    names in ``older_layout``) for each intrinsic; existing adapters are kept, and an
    interrupted run leaves none half-written."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    names = list(names) if names is not None else builtin_names()
    for i, name in enumerate(tqdm(names, desc="seeded intrinsic adapters", unit="adapter")):
        parts = ("alora", checkpoint.name) if name in older_layout else (checkpoint.name, "alora")
        target = root.joinpath(name, *parts)
        if target.is_dir():
            continue
        invocation = tokenizer.encode(invocation_text(name), add_special_tokens=False)
        with atomic_directory(target) as scratch:
            make_adapter(
                checkpoint.path, scratch, seed=first_seed + i, invocation_tokens=invocation
            )
    return root
