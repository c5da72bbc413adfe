"""Test adapters made by PEFT with seeded weights, and PEFT's own aLoRA as reference."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Strong enough that aLoRA and plain LoRA give different greedy tokens (facts file §3).
A_STD, B_STD = 0.08, 0.04


@cache
def base_model(base_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()


def make_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    invocation_tokens: Sequence[int] | None,
    rank: int = 8,
) -> Path:
    """Save a PEFT LoRA (or aLoRA, given invocation tokens) adapter with seeded weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=TARGET_MODULES,
        alora_invocation_tokens=list(invocation_tokens) if invocation_tokens else None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * A_STD)
            elif "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * B_STD)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


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
