"""The ``vllm.platform_plugins`` entry point (pyproject.toml). vLLM loads it while its own
config package is still importing, so this module imports nothing of vLLM's at its top:
the platform class it names lives in ``cpu_platform``, which vLLM imports later."""

from __future__ import annotations

import os

STOCK_ENV = "ALORA_STOCK_LORA_OPS"  # "1": vLLM's own CPU platform and LoRA ops


def cpu_platform() -> str | None:
    """vLLM's CPU platform with the grouped LoRA ops, wherever vLLM would choose its own
    CPU platform (in every process of an engine), unless ``ALORA_STOCK_LORA_OPS=1``."""
    if os.environ.get(STOCK_ENV) == "1":
        return None
    from vllm.platforms import cpu_platform_plugin

    if cpu_platform_plugin() is None:
        return None
    return "alora_serve.lora_ops.cpu_platform.GroupedLoraCpuPlatform"
