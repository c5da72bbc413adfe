"""How a topology reports on itself: metrics, log format, traces."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from alora_serve.observability.logs import LogFormat


class ObservabilityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: bool = Field(
        default=True,
        description="per-call figures and the engines' vLLM metrics (the KV store's and "
        "the gateway's gauges are always kept: they bound resources)",
    )
    log_format: LogFormat = "json"
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 (unset: off)",
    )
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
