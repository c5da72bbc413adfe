"""Adapters with seeded random weights, made by PEFT: stand-ins for trained intrinsics.

No trained intrinsic adapter exists for the embedded SmolLM2, so tests, benchmarks and the
example pipeline use these. Their outputs are meaningless but exercise every path: PEFT's
own aLoRA on them is the exactness reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Strong enough that aLoRA and plain LoRA give different greedy tokens (facts file §3).
A_STD, B_STD = 0.08, 0.04


def make_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    seed: int,
    invocation_tokens: Sequence[int] | None,
    rank: int = 8,
) -> Path:
    """Save a PEFT LoRA (or aLoRA, given invocation tokens) adapter with seeded weights."""
    import torch
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
