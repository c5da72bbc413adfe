"""``alora-serve train``: an intrinsic as a PEFT aLoRA (or LoRA) adapter, trained on
examples rendered by the serving code, with the loss only on the adapter's output.

An aLoRA adapter does not act before its invocation, so the conversation before it is the
base model's: each step computes that prefix's KV once without gradients (with the
adapter off) and runs only the invocation and the target with the adapter, on that KV:
the gradient is the same as through the whole sequence, at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.intrinsics.builtins import BUILTIN_DIR
from alora_serve.intrinsics.catalog import IO_YAML
from alora_serve.intrinsics.io_config import load_io_config
from alora_serve.intrinsics.synthetic_library import invocation_text
from alora_serve.model import resolve_model
from alora_serve.training import checkpoints
from alora_serve.training.encoding import Encoded, Encoder, ExampleTooLongError
from alora_serve.training.examples import read_examples

Progress = Callable[[str], None]
TRAINING_RECORD = "training.json"  # how the adapter was made


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intrinsic: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    data: Path = Field(description="examples, JSON lines (alora_serve.training.examples)")
    out: Path = Field(description="adapter library: writes <intrinsic>/<model>/<kind>/")
    io_yaml: Path | None = Field(default=None, description="None: the built-in's")
    model: str | None = Field(default=None, description="None: the embedded model")
    kind: Literal["alora", "lora"] = "alora"
    rank: int = Field(default=32, ge=1, le=256)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    learning_rate: float = Field(default=3e-4, gt=0.0, le=1.0)
    epochs: int = Field(default=2, ge=1, le=100)
    accumulate: int = Field(default=8, ge=1, description="examples per optimizer step")
    max_tokens: int = Field(default=2048, ge=16)
    seed: int = 0
    checkpoint_every: int = Field(default=10, ge=1, description="optimizer steps")

    def io_config_path(self) -> Path:
        return self.io_yaml or BUILTIN_DIR / f"{self.intrinsic}.yaml"

    def adapter_dir(self, model_name: str) -> Path:
        return self.out / self.intrinsic / model_name / self.kind

    def checkpoint_dir(self) -> Path:
        return self.out / ".checkpoints" / f"{self.intrinsic}-{self.kind}"

    def run_id(self) -> str:
        """What decides the weights: the data's and the io.yaml's bytes and every setting
        but the epochs (a resumed run may extend them) and where files are."""
        settings = self.model_dump_json(
            exclude={"epochs", "checkpoint_every", "data", "out", "io_yaml"}
        )
        inputs = (self.data.read_bytes(), self.io_config_path().read_bytes())
        digests = "".join(hashlib.sha256(content).hexdigest() for content in inputs)
        return hashlib.sha256(f"{settings}{digests}".encode()).hexdigest()[:16]


def train(config: TrainConfig, progress: Progress = print) -> Path:
    """Train (resuming from the last checkpoint of the same run), then write the adapter
    with its io.yaml and a training record; returns the adapter's directory."""
    import torch

    run = config.run_id()
    checkpoints.check(config.checkpoint_dir(), run)  # before minutes of loading
    torch.manual_seed(config.seed)
    checkpoint = resolve_model(config.model)
    model, tokenizer = _load(checkpoint.path, config)
    encoded = _encode_all(config, tokenizer, progress)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    state = checkpoints.load(config.checkpoint_dir(), run, model, optimizer)
    if state is not None:
        progress(f"resuming at epoch {state.epoch + 1}, example {state.position}")
    state = _run(config, model, optimizer, encoded, state or checkpoints.Progress(run))
    target = config.adapter_dir(checkpoint.name)
    _write_adapter(config, model, target, state, len(encoded))
    progress(f"adapter written to {target} ({state.seconds / 60:.1f} min of training)")
    return target


def _load(path: Path, config: TrainConfig) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    on_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu else torch.float32
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    invocation = _invocation(tokenizer, config)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        alora_invocation_tokens=list(invocation) if invocation else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    return model.to("cuda" if on_gpu else "cpu"), tokenizer


def _invocation(tokenizer: Any, config: TrainConfig) -> tuple[int, ...] | None:
    if config.kind == "lora":
        return None
    return tuple(tokenizer.encode(invocation_text(config.intrinsic), add_special_tokens=False))


def _encode_all(config: TrainConfig, tokenizer: Any, progress: Progress) -> list[Encoded]:
    encoder = Encoder(
        renderer=ChatRenderer(tokenizer),
        config=load_io_config(config.io_config_path()),
        invocation=_invocation(tokenizer, config),
        end_token=tokenizer.eos_token_id,
        max_tokens=config.max_tokens,
    )
    encoded, skipped = [], 0
    for example in read_examples(config.data):
        try:
            encoded.append(encoder.encode(example))
        except ExampleTooLongError:
            skipped += 1
    progress(
        f"{len(encoded)} examples ({skipped} over {config.max_tokens} tokens left out), "
        f"{sum(e.tokens for e in encoded)} tokens"
    )
    return encoded


def _run(
    config: TrainConfig,
    model: Any,
    optimizer: Any,
    encoded: list[Encoded],
    state: checkpoints.Progress,
) -> checkpoints.Progress:
    from tqdm import tqdm

    model.train()
    total = config.epochs * len(encoded)
    done = state.epoch * len(encoded) + state.position
    bar = tqdm(total=total, initial=done, desc=f"training {config.intrinsic}", unit="example")
    pending = 0.0  # loss of the examples since the last optimizer step
    while state.epoch < config.epochs:
        order = list(range(len(encoded)))
        random.Random(config.seed * 1000 + state.epoch).shuffle(order)
        while state.position < len(order):
            started = time.perf_counter()
            loss = _loss(model, encoded[order[state.position]]) / config.accumulate
            loss.backward()
            pending += loss.item()
            state.position += 1
            if state.position % config.accumulate == 0 or state.position == len(order):
                optimizer.step()
                optimizer.zero_grad()
                state.losses.append(pending)
                pending = 0.0
                if len(state.losses) % config.checkpoint_every == 0:
                    checkpoints.save(config.checkpoint_dir(), model, optimizer, state)
            state.seconds += time.perf_counter() - started
            bar.update()
            bar.set_postfix(loss=f"{state.losses[-1]:.4f}" if state.losses else "-")
        state.epoch, state.position = state.epoch + 1, 0
    bar.close()
    return state


def _loss(model: Any, example: Encoded) -> Any:
    """The target's mean cross-entropy: the prefix's KV by the base model (no gradient
    flows there: the adapter does not act before its invocation), then the suffix with
    the adapter on it."""
    import torch

    device = next(model.parameters()).device
    past = None
    if example.prefix:
        with torch.no_grad(), model.disable_adapter():
            prefix = torch.tensor([example.prefix], device=device)
            past = model(input_ids=prefix, use_cache=True).past_key_values
    suffix = torch.tensor([example.suffix], device=device)
    labels = torch.tensor([example.labels], device=device)
    return model(input_ids=suffix, past_key_values=past, labels=labels).loss


def _write_adapter(
    config: TrainConfig, model: Any, target: Path, state: checkpoints.Progress, examples: int
) -> None:
    from alora_serve.fsutil import atomic_directory

    with atomic_directory(target) as scratch:
        model.save_pretrained(scratch, safe_serialization=True)
        shutil.copyfile(config.io_config_path(), scratch / IO_YAML)  # with its comments
        record = {
            "config": config.model_dump(mode="json"),
            "data_sha256": hashlib.sha256(config.data.read_bytes()).hexdigest(),
            "examples": examples,
            "optimizer_steps": len(state.losses),
            "losses": [round(loss, 5) for loss in state.losses],
            "training_seconds": round(state.seconds, 1),
        }
        (scratch / TRAINING_RECORD).write_text(json.dumps(record, indent=1))
        portable(scratch, target.parent.name)  # <intrinsic>/<model>/<kind>


def portable(adapter: Path, model_name: str) -> None:
    """An adapter directory with nothing of this machine in it: the base model by name
    (PEFT writes the local path), the run's paths as file names, and no generated model
    card."""
    config_path = adapter / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = model_name
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    record_path = adapter / TRAINING_RECORD
    record = json.loads(record_path.read_text())
    for key in ("data", "out", "io_yaml"):
        if record["config"].get(key):
            record["config"][key] = Path(record["config"][key]).name
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    (adapter / "README.md").unlink(missing_ok=True)
