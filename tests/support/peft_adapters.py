"""PEFT's own aLoRA as the reference, and seeded test adapters (re-exported)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import torch

from alora_serve.adapters.synthetic import make_adapter

__all__ = ["base_model", "make_adapter", "peft_greedy"]


def trained_name(intrinsic: str) -> str:
    """The test engine's name of the adapter the package ships for ``intrinsic``."""
    return f"trained_{intrinsic}"


@cache
def base_model(base_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()


@contextlib.contextmanager
def _with_adapter(base_dir: Path, adapter_dir: Path) -> Iterator:
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model(str(base_dir)), adapter_dir)
    try:
        yield model
    finally:
        model.unload()  # leave the cached base model without LoRA layers


def _generate(model, tokens: Sequence[int], **config):
    """Greedy generate() with EOS ignored. Like vLLM's ignore_eos, EOS may be generated and
    generation goes on (unlike min_new_tokens, which forbids it); eos_token_id=None would
    fall back to the model's EOS, an id that never occurs disables stopping. generate()
    also finds the aLoRA invocation, which forward() does not."""
    from transformers import GenerationConfig

    ids = torch.tensor([list(tokens)])
    settings = GenerationConfig(do_sample=False, eos_token_id=-1, pad_token_id=0, **config)
    with torch.no_grad():
        return model.generate(ids, generation_config=settings, attention_mask=torch.ones_like(ids))


def peft_greedy(
    base_dir: Path, adapter_dir: Path, prompt: Sequence[int], new_tokens: int
) -> list[int]:
    """PEFT's greedy continuation with the adapter (EOS ignored): the reference."""
    with _with_adapter(base_dir, adapter_dir) as model:
        out = _generate(model, prompt, max_new_tokens=new_tokens)
    return out[0, len(prompt) :].tolist()


def peft_next_token_logprobs(
    base_dir: Path, adapter_dir: Path, prompt: Sequence[int], continuation: Sequence[int]
) -> list[torch.Tensor]:
    """PEFT's log-probabilities over the vocabulary before each token of ``continuation``
    (given the prompt and the continuation so far): the reference for logprobs."""
    steps = []
    with _with_adapter(base_dir, adapter_dir) as model:
        for i in range(len(continuation)):
            out = _generate(
                model,
                [*prompt, *continuation[:i]],
                max_new_tokens=1,
                output_logits=True,
                return_dict_in_generate=True,
            )
            steps.append(torch.log_softmax(out.logits[0][0].double(), dim=-1))
    return steps


def peft_kv(
    base_dir: Path, adapter_dir: Path, prompt: Sequence[int]
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Every layer's keys and values over ``prompt`` (an aLoRA invocation in it): PEFT
    with the adapter, and the base model."""
    ids = torch.tensor([list(prompt)])
    with _with_adapter(base_dir, adapter_dir) as model, torch.no_grad():
        with_adapter = model(input_ids=ids, use_cache=True).past_key_values
        with model.disable_adapter():
            base = model(input_ids=ids, use_cache=True).past_key_values
    return _layers(with_adapter), _layers(base)


def _layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]
