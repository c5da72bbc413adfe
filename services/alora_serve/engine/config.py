"""Configuration of one vLLM engine, validated before any process is spawned."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

GiB = 1 << 30


class EngineConfig(BaseModel):
    """What an alora-serve engine runs and how much memory it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(
        default=None, description="HF checkpoint directory; None means the embedded default"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="float32 is what exactness against PEFT is tested in"
    )
    max_model_len: int = Field(default=4096, ge=64)
    block_size: int = Field(
        default=128, description="KV block size in tokens (CPU attention needs a multiple of 32)"
    )
    kv_cache_gib: float = Field(default=1.0, gt=0, description="memory for vLLM's KV cache")
    memory_fraction: float = Field(
        default=0.3, gt=0, le=1, description="vLLM gpu_memory_utilization (CPU: of host RAM)"
    )
    max_num_seqs: int = Field(default=16, ge=1)
    enable_prefix_caching: bool = True
    kv_store_gib: float = Field(
        default=1.0, gt=0, description="bound of the store of base-model prefix KV blocks"
    )
    kv_store_ttl_s: float | None = Field(
        default=None, gt=0, description="free stored blocks unused this long (None: LRU only)"
    )
    max_lora_rank: int = Field(default=64, ge=1, description="largest adapter rank accepted")
    max_loras: int = Field(default=8, ge=1, description="adapters batched in one step")
    adapter_mode: Literal["lora", "merged"] = Field(
        default="lora",
        description="lora: adapters as LoRA (several per engine); merged: one adapter "
        "merged into the weights (no LoRA kernels; needs base KV from a prefill service)",
    )
    enforce_eager: bool = Field(
        default=True, description="skip torch.compile (saves ~2 min of start-up on CPU)"
    )
    seed: int = 0
    niceness: int = Field(
        default=4,
        ge=0,
        le=19,
        description="added to the CPU niceness of the process that starts the engine, and "
        "so of the engine's processes: where engines saturate the cores, the front door "
        "(gRPC gateway, admission, refusals) keeps its share",
    )
    vllm_metrics: bool = Field(
        default=False,
        description="record vLLM's own Prometheus metrics (its Prometheus stat logger only: "
        "its default logger prints stats every 5 s)",
    )

    @field_validator("block_size")
    @classmethod
    def _block_size_multiple_of_32(cls, value: int) -> int:
        if value <= 0 or value % 32:
            raise ValueError(f"block_size must be a positive multiple of 32, got {value}")
        return value

    @property
    def kv_cache_bytes(self) -> int:
        return int(self.kv_cache_gib * GiB)

    @property
    def kv_store_bytes(self) -> int:
        return int(self.kv_store_gib * GiB)
