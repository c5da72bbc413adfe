"""Plain PEFT/transformers with a reused ``DynamicCache``: PEFT's documented pattern for
aLoRA (compute the conversation's KV with the base model once, then generate with the
adapter from a copy of it). Also the reference for every peer's output."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Greedy:
    tokens: list[int]
    logprobs: list[float]  # of each chosen token
    seconds: float


class PeftCache:
    """The base model with one aLoRA adapter, fp32 on this CPU."""

    def __init__(self, checkpoint: Path, adapter: Path, threads: int) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        base = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
        self.model = PeftModel.from_pretrained(base, adapter).eval()

    @torch.inference_mode()
    def base_kv(self, conversation: list[int]):
        """The conversation's KV from the base model (no invocation in it: PEFT's aLoRA
        leaves every token to the base weights)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        ids = torch.tensor([conversation])
        self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return cache

    @torch.inference_mode()
    def generate(self, prompt: list[int], new_tokens: int, cache=None) -> Greedy:
        """Greedy ``new_tokens`` after ``prompt``; with ``cache`` (a base KV of a prefix of
        it) only the rest of the prompt is computed (on a copy: the cache stays reusable)."""
        from transformers import GenerationConfig

        ids = torch.tensor([prompt])
        settings = GenerationConfig(
            do_sample=False,
            eos_token_id=-1,
            pad_token_id=0,
            max_new_tokens=new_tokens,
            output_logits=True,
            return_dict_in_generate=True,
        )
        started = time.perf_counter()
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            generation_config=settings,
            past_key_values=copy.deepcopy(cache) if cache is not None else None,
        )
        seconds = time.perf_counter() - started
        tokens = out.sequences[0, len(prompt) :].tolist()
        logprobs = [
            torch.log_softmax(step[0].double(), dim=-1)[token].item()
            for step, token in zip(out.logits, tokens, strict=True)
        ]
        return Greedy(tokens, logprobs, seconds)
