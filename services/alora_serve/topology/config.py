"""One pydantic config for every topology, validated before anything starts.

- ``colocated``: one engine with every adapter and its own KV store (smallest footprint);
- ``disaggregated``: a prefill service (base model, owns conversation KV) and decode
  workers, one deployment per intrinsic by default (adapter merged into the weights), or
  several intrinsics per deployment (multi-LoRA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alora_serve.engine import EngineConfig
from alora_serve.gateway.admission import DEFAULT_MAX_IN_FLIGHT
from alora_serve.gateway.auth import TokenTable
from alora_serve.gateway.config import DEFAULT_MAX_MESSAGE_BYTES, GatewayConfig
from alora_serve.observability.config import ObservabilityConfig

SERVE_SHUTDOWN_TIMEOUT_S = 20.0  # Ray Serve's default graceful_shutdown_timeout_s
SHUTDOWN_MARGIN_S = 10.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaling(_Strict):
    """Ray Serve options of one deployment."""

    num_replicas: int = Field(default=1, ge=1, description="ignored when autoscaling is set")
    autoscaling: dict[str, Any] | None = Field(
        default=None, description="Ray Serve autoscaling_config (min/max_replicas, ...)"
    )
    max_ongoing_requests: int = Field(default=16, ge=1, description="per replica")
    max_queued_requests: int = Field(
        default=64, ge=1, description="waiting calls beyond which callers are refused"
    )
    num_cpus: float = Field(default=0.5, gt=0, description="CPUs reserved per replica")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per replica (GPU clusters)")
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources a replica needs (placement)"
    )

    @field_validator("autoscaling")
    @classmethod
    def _valid_autoscaling(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from ray.serve.config import AutoscalingConfig

            AutoscalingConfig(**value)  # raises a ValidationError naming the bad field
        return value

    def deployment_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "resources": dict(self.resources),
            },
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling
        else:
            options["num_replicas"] = self.num_replicas
        return options


class PrefillConfig(_Strict):
    engine: EngineConfig = EngineConfig()
    scaling: Scaling = Scaling()
    lease_ttl_s: float = Field(default=60.0, gt=0, description="unreleased leases expire")
    max_leases: int = Field(default=256, ge=1)


class DecodeGroup(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    intrinsics: list[str] = Field(min_length=1)
    mode: Literal["merged", "lora"] | None = Field(
        default=None, description="default: merged for one intrinsic, lora for several"
    )
    engine: EngineConfig = EngineConfig(kv_cache_gib=0.5, kv_store_gib=0.25)
    scaling: Scaling = Scaling()

    @model_validator(mode="after")
    def _mode_fits(self) -> DecodeGroup:
        if self.resolved_mode == "merged" and len(self.intrinsics) != 1:
            raise ValueError(
                f"decode group {self.name!r}: merged mode serves exactly one intrinsic, "
                f"got {self.intrinsics}; use mode 'lora' for several"
            )
        return self

    @property
    def resolved_mode(self) -> Literal["merged", "lora"]:
        return self.mode or ("merged" if len(self.intrinsics) == 1 else "lora")

    def engine_config(self) -> EngineConfig:
        return self.engine.model_copy(update={"adapter_mode": self.resolved_mode})


class TopologyConfig(_Strict):
    topology: Literal["colocated", "disaggregated"] = "disaggregated"
    model: str | None = Field(default=None, description="base checkpoint; None: embedded")
    library: str | None = Field(
        default=None,
        description="intrinsics adapter library; None: the embedded library (trained "
        "adapters where the package ships them, seeded stand-ins for the rest)",
    )
    intrinsics: list[str] = Field(
        default_factory=list, description="what to serve; empty: all in the library"
    )
    prefill: PrefillConfig = PrefillConfig()
    decode: list[DecodeGroup] = Field(
        default_factory=list, description="empty: one merged deployment per intrinsic"
    )
    call_timeout_s: float = Field(
        default=300.0, gt=0, description="a worker not answering this long fails the call"
    )
    colocated: EngineConfig = EngineConfig()
    colocated_scaling: Scaling = Scaling()
    gateway: GatewayConfig | None = Field(
        default=None, description="the gRPC API (alora.v1); None: HTTP and handles only"
    )
    observability: ObservabilityConfig = ObservabilityConfig()

    @model_validator(mode="after")
    def _groups_are_distinct(self) -> TopologyConfig:
        names = [g.name for g in self.decode]
        if len(set(names)) != len(names):
            raise ValueError(f"decode group names must be unique, got {names}")
        served = [i for g in self.decode for i in g.intrinsics]
        if len(set(served)) != len(served):
            raise ValueError(f"each intrinsic may be in one decode group only, got {served}")
        if self.intrinsics and set(served) - set(self.intrinsics):
            raise ValueError(
                f"decode groups serve {sorted(set(served) - set(self.intrinsics))}, "
                f"which are not in intrinsics {self.intrinsics}"
            )
        return self

    @property
    def shutdown_timeout_s(self) -> float:
        """How long Serve lets every replica finish in-flight work before killing it: the
        gateway's grace (workers too: calls in flight still need them) plus a margin."""
        grace = self.gateway.shutdown_grace_s if self.gateway else 0.0
        return max(SERVE_SHUTDOWN_TIMEOUT_S, grace + SHUTDOWN_MARGIN_S)

    def with_gateway_address(self, host: str | None, port: int | None) -> TopologyConfig:
        """The gateway (if configured) on ``host`` and ``port`` where given (validated)."""
        address = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        if self.gateway is None or not address:
            return self
        gateway = GatewayConfig.model_validate(self.gateway.model_dump() | address)
        return self.model_copy(update={"gateway": gateway})

    def decode_groups(self, available: list[str]) -> list[DecodeGroup]:
        """The configured groups, or one merged group per intrinsic; every intrinsic to
        serve must be in a group."""
        wanted = self.intrinsics or available
        if missing := sorted(set(wanted) - set(available)):
            raise ValueError(f"intrinsics {missing} are not in the library ({available})")
        groups = self.decode or [
            DecodeGroup(name=name.replace("_", "-"), intrinsics=[name]) for name in wanted
        ]
        if unserved := sorted(set(wanted) - {i for g in groups for i in g.intrinsics}):
            raise ValueError(f"intrinsics {unserved} are in no decode group")
        return groups


EMBEDDED_CONFIG = Path(__file__).with_name("embedded.yaml")


def load_topology(path: Path | str | None = None, **overrides: Any) -> TopologyConfig:
    """A topology from a YAML file (default: the embedded one), with ``overrides`` of
    top-level fields (None values are ignored)."""
    data = yaml.safe_load(Path(path or EMBEDDED_CONFIG).read_text()) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TopologyConfig.model_validate(data)


@dataclass(frozen=True)
class IngressSettings:
    """What the ingress replica is given (built from a ``TopologyConfig``)."""

    model_name: str
    call_timeout_s: float
    gateway: GatewayConfig | None = None  # None: no gRPC gateway
    tokens: TokenTable = field(default_factory=TokenTable)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)

    @property
    def max_in_flight(self) -> int:
        """Calls served at once, gRPC and HTTP together."""
        return self.gateway.max_in_flight if self.gateway else DEFAULT_MAX_IN_FLIGHT

    @property
    def max_body_bytes(self) -> int:
        """The largest request, gRPC message or HTTP body."""
        return self.gateway.max_message_bytes if self.gateway else DEFAULT_MAX_MESSAGE_BYTES
