"""Locust's users make gRPC calls through gRPC's gevent support. Found by the overload
run: a quick call (a refusal) came back after seconds when more than ten other calls were
in flight, because each waiting call holds one of gevent's pool threads (10 by default).
A real gRPC server in one process, a gevent-patched client in another."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support.network import free_port

SERVER = """
import asyncio, sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

class Health(health_pb2_grpc.HealthServicer):
    async def Check(self, request, context):
        if request.service == "slow":
            await asyncio.sleep(3)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

async def main():
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    await server.start()
    print("up", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""

# 30 calls that take 3 s, and meanwhile quick calls from one more greenlet: their
# latencies, as JSON. argv: port, then "locust_user" to patch as the load test does.
CLIENT = """
import json, sys, time
if sys.argv[2] == "locust_user":
    import alora_serve.loadtest.locust_user  # noqa: F401 (patches grpc for gevent)
else:
    import grpc.experimental.gevent
    grpc.experimental.gevent.init_gevent()
import gevent, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

channel = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}")
stub = health_pb2_grpc.HealthStub(channel)
quick = []

def slow():
    stub.Check(health_pb2.HealthCheckRequest(service="slow"))

def quick_calls():
    gevent.sleep(0.5)
    for _ in range(10):
        started = time.perf_counter()
        stub.Check(health_pb2.HealthCheckRequest())
        quick.append(time.perf_counter() - started)
        gevent.sleep(0.1)

gevent.joinall([gevent.spawn(slow) for _ in range(30)] + [gevent.spawn(quick_calls)])
print(json.dumps(quick))
"""


@pytest.fixture(scope="module")
def server_port():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVER), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "up"
        yield port
    finally:
        server.kill()
        server.wait()


def _quick_calls(port: int, patch: str) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port), patch],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_a_quick_call_is_not_held_up_by_thirty_slow_ones(server_port: int) -> None:
    assert max(_quick_calls(server_port, "locust_user")) < 0.5


def test_gevents_default_pool_would_hold_it_up(server_port: int) -> None:
    """The control: the same calls with gevent's default pool of 10 threads."""
    assert max(_quick_calls(server_port, "default")) > 2.0
