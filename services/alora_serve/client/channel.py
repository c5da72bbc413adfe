"""What the sync and async clients share: channel settings, retries, credentials, metadata
and deadlines."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

SERVICE = "alora.v1.Intrinsics"
# Safe to replay: the server keeps no state a second attempt would see twice. Not
# Generate: a stream whose chunks were delivered is not replayed.
RETRIED_METHODS = ("ListIntrinsics", "RunIntrinsic", "RunIntrinsics", "PrefillConversation")
MAX_ATTEMPTS_CAP = 5  # gRPC ignores retry policies above this
MAX_MESSAGE_BYTES = 64 << 20
# At most one ping per 5 minutes, and only during calls: the server's default ping policy
# answers more frequent pings with GOAWAY (too_many_pings).
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 20_000

Metadata: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClientTLS:
    """PEM bytes. No ``root_certificates``: the system's roots. ``certificate_chain`` and
    ``private_key`` (together): the client's certificate, for mutual TLS."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name_override: str | None = None  # the name expected in the server certificate

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("ClientTLS: give certificate_chain and private_key together")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def service_config(max_attempts: int) -> str:
    """The channel's service config: UNAVAILABLE retried with exponential backoff on the
    idempotent methods (``max_attempts`` 1: no retries)."""
    method: dict[str, Any] = {"name": [{"service": SERVICE, "method": m} for m in RETRIED_METHODS]}
    if max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method]})


def channel_options(max_attempts: int, tls: ClientTLS | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(max_attempts)),
        ("grpc.service_config_disable_resolution", 1),
        # A request larger than this buffer is not retried: let every request be.
        ("grpc.per_rpc_retry_buffer_size", MAX_MESSAGE_BYTES),
    ]
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return options


class ClientCore:
    """A client's settings, checked once: target, credentials, options, metadata, deadline."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        tls: ClientTLS | None,
        timeout_s: float,
        max_attempts: int,
    ) -> None:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"target must be 'host:port', got {target!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise ValueError(f"max_attempts must be an int, got {max_attempts!r}")
        if not 1 <= max_attempts <= MAX_ATTEMPTS_CAP:
            raise ValueError(f"max_attempts must be in [1, {MAX_ATTEMPTS_CAP}], got {max_attempts}")
        self.target = target
        self.default_timeout_s = _positive_timeout(timeout_s)
        self.metadata = call_metadata(token)
        self.credentials = None if tls is None else tls.credentials()
        self.options = channel_options(max_attempts, tls)

    def timeout(self, timeout_s: float | None) -> float:
        """The deadline of one call, in seconds from now."""
        return self.default_timeout_s if timeout_s is None else _positive_timeout(timeout_s)

    def sync_channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=self.options)
        return grpc.secure_channel(self.target, self.credentials, options=self.options)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(self.target, options=self.options)
        return grpc.aio.secure_channel(self.target, self.credentials, options=self.options)


def call_metadata(token: str | None) -> Metadata:
    """Every call's metadata: the bearer token, if any."""
    if token is None:
        return ()
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise ValueError("token must be a non-empty string without whitespace")
    return (("authorization", f"Bearer {token}"),)


def _positive_timeout(timeout_s: float) -> float:
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or timeout_s <= 0
    ):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)
