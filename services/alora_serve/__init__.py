"""alora-serve: serving LLM intrinsics as Activated LoRA adapters on vLLM."""

__version__ = "0.1.0"
