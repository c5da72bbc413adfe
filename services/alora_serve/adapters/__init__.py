"""Adapters: reading PEFT LoRA/aLoRA directories, validating them, finding invocations."""

from alora_serve.adapters.invocation import InvocationNotFoundError, find_invocation_start
from alora_serve.adapters.spec import AdapterError, AdapterSpec, read_adapter, validate_for_base
from alora_serve.adapters.vllm_copy import vllm_lora_dir

__all__ = [
    "AdapterError",
    "AdapterSpec",
    "InvocationNotFoundError",
    "find_invocation_start",
    "read_adapter",
    "validate_for_base",
    "vllm_lora_dir",
]
