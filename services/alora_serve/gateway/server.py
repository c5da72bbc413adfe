"""The gateway's grpc.aio server: alora.v1.Intrinsics, the standard health service and
server reflection, with TLS or mutual TLS, message size limits, keepalive, and a
graceful stop that lets in-flight calls finish."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from alora.v1 import intrinsics_pb2, intrinsics_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from alora_serve.gateway.config import GatewayConfig, TLSFiles
from alora_serve.gateway.malformed import MalformedRequests
from alora_serve.gateway.servicer import IntrinsicsServicer

SERVICE = intrinsics_pb2.DESCRIPTOR.services_by_name["Intrinsics"].full_name
# Clients may ping this often without data in flight (gRPC's default is 5 minutes,
# which turns a client's 60 s keepalive into GOAWAY too_many_pings).
MIN_CLIENT_PING_INTERVAL_MS = 10_000
logger = logging.getLogger(__name__)


@dataclass
class Gateway:
    server: grpc.aio.Server
    health: health_aio.HealthServicer
    port: int
    grace_s: float
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def stop(self) -> None:
        """Report NOT_SERVING, refuse new calls, give in-flight ones ``grace_s``."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_s)
        if self.health_server is not None:
            await self.health_server.stop(0)
        logger.info("gRPC gateway on port %d stopped", self.port)


async def start_gateway(config: GatewayConfig, servicer: IntrinsicsServicer) -> Gateway:
    server = grpc.aio.server(interceptors=[MalformedRequests()], options=_server_options(config))
    intrinsics_pb2_grpc.add_IntrinsicsServicer_to_server(servicer, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{config.host}:{config.port}"
    if config.tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, _credentials(config.tls))
    await server.start()
    for service in ("", SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    logger.info(
        "gRPC gateway serving %s on %s:%d (tls: %s)", SERVICE, config.host, port, _tls_mode(config)
    )
    gateway = Gateway(server, health, port, config.shutdown_grace_s)
    if config.health_port is not None:
        gateway.health_server, gateway.health_port = await _start_health_server(config, health)
    return gateway


async def _start_health_server(
    config: GatewayConfig, health: health_aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """grpc.health.v1 alone, in plaintext (kubelet probes take no TLS), sharing the API
    server's status: a draining gateway reports NOT_SERVING here too."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{config.host}:{config.health_port}")
    await server.start()
    logger.info("gRPC health (plaintext) on %s:%d", config.host, port)
    return server, port


def _server_options(config: GatewayConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_pings_without_data", 0),
        # A second server on the same port must fail to start, not share it silently.
        ("grpc.so_reuseport", 0),
    ]


def _credentials(tls: TLSFiles) -> grpc.ServerCredentials:
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _tls_mode(config: GatewayConfig) -> str:
    if config.tls is None:
        return "off"
    return "mutual" if config.tls.client_ca_file else "server"
