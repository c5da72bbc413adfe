"""Training intrinsics as aLoRA (or LoRA) adapters with PEFT, on prompts rendered by the
serving code, and evaluating them through the served system."""
