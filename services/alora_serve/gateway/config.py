"""The gateway's settings (the ``gateway:`` section of a topology)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alora_serve.gateway.admission import DEFAULT_MAX_IN_FLIGHT

MIB = 1 << 20
DEFAULT_MAX_MESSAGE_BYTES = 4 * MIB


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSFiles(_Strict):
    """PEM files, read where the gateway runs (mount them on every Ray node)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = Field(
        default=None, description="mutual TLS: clients must present a certificate it signed"
    )


class GatewayConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    tls: TLSFiles | None = None
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="also serve grpc.health.v1 (only) in plaintext on this port, for "
        "kubelet gRPC probes, which take no TLS; None: health on the API port only",
    )
    tokens_file: Path | None = Field(
        default=None,
        description="bearer tokens and their tenants (see docs/api.md); None: no "
        "authentication, every call is tenant 'default'",
    )
    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        description="calls served at once, gRPC and HTTP together; more are refused "
        "(RESOURCE_EXHAUSTED, HTTP 429)",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        le=256 * MIB,
        description="largest request (gRPC message or HTTP body); larger ones are refused",
    )
    keepalive_time_s: float = Field(default=60.0, gt=0, description="ping idle connections")
    keepalive_timeout_s: float = Field(default=20.0, gt=0)
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="on shutdown, in-flight calls get this long to finish"
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources of the ingress (placement)"
    )
