"""PEFT's own aLoRA as the reference, and seeded test adapters (re-exported)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

from alora_serve.adapters.synthetic import make_adapter

__all__ = ["base_model", "make_adapter", "peft_greedy"]


@cache
def base_model(base_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()


def peft_greedy(
    base_dir: Path, adapter_dir: Path, prompt: Sequence[int], new_tokens: int
) -> list[int]:
    """PEFT's greedy continuation with the adapter (EOS ignored): the reference."""
    from peft import PeftModel
    from transformers import GenerationConfig

    model = PeftModel.from_pretrained(base_model(str(base_dir)), adapter_dir)
    try:
        ids = torch.tensor([list(prompt)])
        # Like vLLM's ignore_eos, EOS may be generated and generation goes on (unlike
        # min_new_tokens, which forbids it). eos_token_id=None would fall back to the
        # model's EOS; an id that never occurs disables stopping.
        config = GenerationConfig(
            max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1, pad_token_id=0
        )
        with torch.no_grad():
            out = model.generate(ids, generation_config=config, attention_mask=torch.ones_like(ids))
        return out[0, ids.shape[1] :].tolist()
    finally:
        model.unload()  # leave the cached base model without LoRA layers


def peft_next_token_logprobs(
    base_dir: Path, adapter_dir: Path, prompt: Sequence[int], continuation: Sequence[int]
) -> list[torch.Tensor]:
    """PEFT's log-probabilities over the vocabulary before each token of ``continuation``
    (given the prompt and the continuation so far): the reference for logprobs."""
    from peft import PeftModel
    from transformers import GenerationConfig

    model = PeftModel.from_pretrained(base_model(str(base_dir)), adapter_dir)
    config = GenerationConfig(
        max_new_tokens=1,
        do_sample=False,
        eos_token_id=-1,
        pad_token_id=0,
        output_logits=True,
        return_dict_in_generate=True,
    )
    try:
        steps = []
        for i in range(len(continuation)):
            ids = torch.tensor([[*prompt, *continuation[:i]]])
            with torch.no_grad():  # generate() finds the aLoRA invocation, forward() does not
                out = model.generate(
                    ids, generation_config=config, attention_mask=torch.ones_like(ids)
                )
            steps.append(torch.log_softmax(out.logits[0][0].double(), dim=-1))
        return steps
    finally:
        model.unload()
