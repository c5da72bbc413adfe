"""The plaintext health port kubelet gRPC probes use while the API port speaks TLS."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alora_serve.gateway.admission import Admission
from alora_serve.gateway.auth import TokenTable
from alora_serve.gateway.config import GatewayConfig, TLSFiles
from alora_serve.gateway.server import SERVICE, start_gateway
from alora_serve.gateway.servicer import IntrinsicsServicer
from tests.support.pki import make_pki


async def _check(address: str, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return reply.status


async def test_health_port_answers_in_plaintext_and_follows_the_drain(tmp_path):
    files = make_pki("alora.test").write(tmp_path)
    tls = TLSFiles(cert_file=files["cert"], key_file=files["key"])
    servicer = IntrinsicsServicer(None, [], TokenTable(), Admission(1))  # type: ignore[arg-type]
    gateway = await start_gateway(GatewayConfig(port=0, tls=tls, health_port=0), servicer)
    health = f"127.0.0.1:{gateway.health_port}"
    try:
        assert await _check(health) == health_pb2.HealthCheckResponse.SERVING
        assert await _check(health, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(health) as channel:  # health only, no API
            list_call = channel.unary_unary(f"/{SERVICE}/ListIntrinsics")
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await list_call(b"", timeout=5)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.aio.AioRpcError):  # the API port stays TLS-only
            await _check(f"127.0.0.1:{gateway.port}")
    finally:
        await gateway.health.enter_graceful_shutdown()
        assert await _check(health) == health_pb2.HealthCheckResponse.NOT_SERVING
        await gateway.stop()


async def test_without_a_health_port_only_the_api_port_listens():
    servicer = IntrinsicsServicer(None, [], TokenTable(), Admission(1))  # type: ignore[arg-type]
    gateway = await start_gateway(GatewayConfig(port=0), servicer)
    try:
        assert gateway.health_port is None
        assert await _check(f"127.0.0.1:{gateway.port}") == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gateway.stop()
