"""The public gRPC API end to end: a real server on loopback (the colocated topology on
Ray Serve, the gateway in its ingress replica, the real model), called with the SDK.

Every RPC, every status code the API promises, authentication and tenant isolation,
fuzzed requests, many concurrent clients, cancellation, TLS, graceful shutdown (last).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
import yaml
from alora.v1 import intrinsics_pb2 as pb
from alora.v1 import intrinsics_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alora_serve.client import AloraClient, AloraError, AsyncAloraClient, ClientTLS, result_value
from alora_serve.engine import EngineConfig
from alora_serve.gateway.config import GatewayConfig, TLSFiles
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.topology import local_ray
from alora_serve.topology.app import build_app
from alora_serve.topology.config import Scaling, TopologyConfig
from tests.support.conversations import client_inputs, rag_request
from tests.support.network import free_port

pytestmark = pytest.mark.engine

APP = "alora-grpc"
NAMES = ["answerability", "uncertainty", "query_rewrite", "citations"]
TOKENS = {
    "acme": "acme-token-0123456789",
    "globex": "globex-token-0123456789",
    "limited": "limited-token-0123456789",
}
MAX_IN_FLIGHT = 6
HTTP_PORT = free_port()  # the same application's HTTP API (the same admission limit)
MAX_MODEL_LEN = 4096
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> str:
    """The address of the gateway of a running application."""
    from ray import serve

    root = tmp_path_factory.mktemp("grpc")
    library = make_library(resolve_model(None), root / "library", NAMES)
    tokens_file = root / "tokens.yaml"
    entries = [{"token": TOKENS[t], "tenant": t} for t in ("acme", "globex")]
    entries.append({"token": TOKENS["limited"], "tenant": "limited", "intrinsics": NAMES[:1]})
    tokens_file.write_text(yaml.safe_dump({"tokens": entries}))
    port = free_port()
    config = TopologyConfig(
        topology="colocated",
        intrinsics=NAMES,
        colocated=EngineConfig(max_model_len=MAX_MODEL_LEN, kv_cache_gib=0.5, kv_store_gib=1.0),
        colocated_scaling=Scaling(max_ongoing_requests=32),
        gateway=GatewayConfig(
            port=port, tokens_file=tokens_file, max_in_flight=MAX_IN_FLIGHT, shutdown_grace_s=60
        ),
    )
    with local_ray.running(num_cpus=4):
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": HTTP_PORT})
            serve.run(build_app(config, library), name=APP, route_prefix="/")
            yield f"127.0.0.1:{port}"
        finally:
            serve.shutdown()


def client(target: str, tenant: str = "acme", **options) -> AloraClient:
    return AloraClient(target, token=TOKENS.get(tenant, tenant), **options)


def conversation(tokenizer, tokens: int, skip: int) -> tuple[list[tuple[str, str]], list[dict]]:
    return client_inputs(rag_request(tokenizer, tokens, skip=skip))


def handle(name: str):
    from ray import serve

    return serve.get_deployment_handle(name, app_name=APP)


async def worker_stats() -> dict:
    return await handle("colocated").stats.remote()


def rpc_error(excinfo) -> AloraError:
    return excinfo.value


# -- every RPC ---------------------------------------------------------------------------


def test_list_intrinsics_describes_what_is_served(target):
    with client(target) as acme:
        listed = {info.name: info for info in acme.list_intrinsics()}
    assert sorted(listed) == sorted(NAMES)
    assert listed["citations"].needs_documents and not listed["uncertainty"].needs_documents
    assert "answerability_likelihood" in str(listed["answerability"].result_schema)
    assert {info.adapter_kind for info in listed.values()} == {"alora"}
    with client(target, "limited") as limited:  # a token limited to some intrinsics
        assert [info.name for info in limited.list_intrinsics()] == NAMES[:1]


async def test_run_intrinsic_returns_typed_result_usage_and_timings(target, tokenizer):
    messages, documents = conversation(tokenizer, 600, skip=50)
    with client(target) as acme:
        first = acme.run_intrinsic("answerability", messages, documents)
        again = acme.run_intrinsic("answerability", messages, documents)
    value = result_value(first)["answerability_likelihood"]
    assert 0 <= value <= 1 and first.answerability_likelihood.value == pytest.approx(value)
    assert first.raw_output and first.usage.generated_tokens > 0
    assert first.usage.prompt_tokens > 500
    total, worker = first.timings.total.ToNanoseconds(), first.timings.worker.ToNanoseconds()
    assert total >= worker > 0
    # The first call computed the conversation's KV (a base request before the adapter's)
    assert first.usage.reused_prompt_tokens == 0
    # The second call reuses the conversation's KV: it computes only the invocation.
    assert again.usage.reused_prompt_tokens >= first.usage.prompt_tokens - 32
    assert again.raw_output == first.raw_output


async def test_grpc_results_equal_the_serving_layer_s(target, tokenizer):
    from alora_serve.intrinsics.call import IntrinsicsCall

    request = rag_request(tokenizer, 500, skip=51)
    messages, documents = client_inputs(request)
    with client(target) as acme:
        over_grpc = acme.run_intrinsics(["answerability", "uncertainty"], messages, documents)
    call = IntrinsicsCall(intrinsics=["answerability", "uncertainty"], request=request)
    direct = await handle("ingress").run_many.remote(call.model_copy(update={"tenant": "acme"}))
    assert [r.intrinsic for r in over_grpc] == ["answerability", "uncertainty"]
    assert [r.raw_output for r in over_grpc] == [r.raw_output for r in direct]
    # The same tokens; a likelihood may differ from the sixth digit, because the two calls
    # share engine steps with different neighbours (another batch shape, another GEMM order:
    # CI saw 1.6e-6), as the main job's tests allow.
    for grpc_result, direct_result in zip(over_grpc, direct, strict=True):
        assert result_value(grpc_result) == pytest.approx(direct_result.result, rel=1e-4)


async def test_generate_streams_the_base_model_s_turn(target):
    from alora_serve.engine import ChatMessage, SamplingOptions

    question = [("user", "What is the capital of France? Answer in one sentence.")]
    with client(target) as acme:
        chunks = list(acme.generate(question, max_tokens=24))
    assert len(chunks) > 2 and all(c.text for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason in {"stop", "length"} and last.usage.generated_tokens <= 24
    streamed = "".join(c.text for c in chunks)
    unary = await handle("ingress").chat.remote(
        [ChatMessage(role="user", content=question[0][1])], SamplingOptions(max_tokens=24), "acme"
    )
    assert streamed == unary.text and "Paris" in streamed


async def test_prefill_conversation_leaves_calls_only_decoding(target, tokenizer):
    messages, documents = conversation(tokenizer, 700, skip=52)
    with client(target) as acme:
        kept = acme.prefill_conversation(["uncertainty"], messages, documents)
        assert kept > 600
        before = (await worker_stats())["computed_base_tokens"]
        result = acme.run_intrinsic("uncertainty", messages, documents)
    assert (await worker_stats())["computed_base_tokens"] == before  # nothing recomputed
    assert result.usage.reused_prompt_tokens >= kept


async def test_a_tenant_never_hits_another_tenant_s_kv(target, tokenizer):
    messages, documents = conversation(tokenizer, 600, skip=53)
    computed = []
    for tenant in ("acme", "acme", "globex"):
        before = (await worker_stats())["computed_base_tokens"]
        with client(target, tenant) as caller:
            caller.run_intrinsic("answerability", messages, documents)
        computed.append((await worker_stats())["computed_base_tokens"] - before)
    acme_first, acme_again, globex = computed
    assert acme_first > 500 and acme_again == 0
    assert globex == acme_first  # all of it again: no block of acme's was reused


# -- status codes ------------------------------------------------------------------------


def test_calls_without_a_valid_token_are_unauthenticated(target):
    for token in (None, "not-a-token-0123456789"):
        with AloraClient(target, token=token) as anonymous, pytest.raises(AloraError) as e:
            anonymous.list_intrinsics()
        assert e.value.code == Code.UNAUTHENTICATED and e.value.reason == "INVALID_TOKEN"
        assert "not-a-token" not in str(e.value)


def test_a_token_may_only_call_its_intrinsics(target):
    with client(target, "limited") as limited, pytest.raises(AloraError) as e:
        limited.run_intrinsics(["answerability", "uncertainty"], [("user", "Is it?")])
    assert e.value.code == Code.PERMISSION_DENIED and "uncertainty" in e.value.message


def test_unknown_intrinsic_is_not_found(target):
    with client(target) as acme, pytest.raises(AloraError) as e:
        acme.run_intrinsic("telepathy", [("user", "Hi")])
    assert e.value.code == Code.NOT_FOUND and e.value.resource == ("intrinsic", "telepathy")


def test_malformed_input_is_invalid_argument_naming_the_field(target):
    stub, metadata = raw_stub(target)
    bad_role = pb.RunIntrinsicRequest(
        intrinsic="answerability",
        conversation=pb.Conversation(messages=[pb.Message(role="wizard", content="Hi")]),
    )
    with pytest.raises(grpc.RpcError) as e:
        stub.RunIntrinsic(bad_role, metadata=metadata, timeout=30)
    error = AloraError.from_rpc_error(e.value)
    assert error.code == Code.INVALID_ARGUMENT
    assert any(field.startswith("messages.0.role") for field, _ in error.field_violations)
    with client(target) as acme, pytest.raises(AloraError) as e:
        acme.run_intrinsic("citations", [("user", "Who?"), ("assistant", "Me.")])
    assert e.value.code == Code.INVALID_ARGUMENT and "needs documents" in e.value.message


def test_too_long_input_is_resource_exhausted(target):
    long_text = "The quick brown fox jumps over the lazy dog. " * 600  # ~6k tokens
    with client(target) as acme, pytest.raises(AloraError) as e:
        acme.run_intrinsic("answerability", [("user", long_text)])
    assert e.value.code == Code.RESOURCE_EXHAUSTED and e.value.reason == "INPUT_TOO_LONG"
    with client(target) as acme, pytest.raises(AloraError) as e:
        list(acme.generate([("user", long_text)], max_tokens=8))
    assert e.value.code == Code.RESOURCE_EXHAUSTED and str(MAX_MODEL_LEN) in e.value.message
    huge = "x" * (5 << 20)  # over the gateway's 4 MiB message limit
    with client(target) as acme, pytest.raises(AloraError) as e:
        acme.run_intrinsic("answerability", [("user", huge)])
    assert e.value.code == Code.RESOURCE_EXHAUSTED


async def test_overload_is_refused_quickly_with_resource_exhausted(target, tokenizer):
    calls = [conversation(tokenizer, 900, skip=40 + i) for i in range(3 * MAX_IN_FLIGHT)]

    async def timed(messages, documents):
        started = time.perf_counter()
        async with AsyncAloraClient(target, token=TOKENS["acme"], max_attempts=1) as caller:
            try:
                await caller.run_intrinsic("answerability", messages, documents)
                return "ok", time.perf_counter() - started
            except AloraError as error:
                assert error.code == Code.RESOURCE_EXHAUSTED and error.reason == "OVERLOADED"
                assert error.retry_after_s and error.retry_after_s > 0
                return "refused", time.perf_counter() - started

    outcomes = await asyncio.gather(*(timed(m, d) for m, d in calls))
    served = [s for outcome, s in outcomes if outcome == "ok"]
    refused = [s for outcome, s in outcomes if outcome == "refused"]
    assert len(served) >= MAX_IN_FLIGHT and refused
    assert max(refused) < min(served)  # refused before any admitted call was done


async def test_http_calls_share_the_admission_limit_and_are_refused_with_429(target, tokenizer):
    import httpx

    calls = [
        {"intrinsics": ["answerability"], "request": rag_request(tokenizer, 700, skip=70 + i)}
        for i in range(3 * MAX_IN_FLIGHT)
    ]
    headers = {"authorization": f"Bearer {TOKENS['acme']}"}

    async def timed(http: httpx.AsyncClient, call) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        body = {**call, "request": call["request"].model_dump(mode="json")}
        response = await http.post("/v1/intrinsics:run", json=body, headers=headers)
        return response, time.perf_counter() - started

    base = f"http://127.0.0.1:{HTTP_PORT}"
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:
        outcomes = await asyncio.gather(*(timed(http, call) for call in calls))
    served = [s for response, s in outcomes if response.status_code == 200]
    refused = [(r, s) for r, s in outcomes if r.status_code == 429]
    statuses = [(r.status_code, r.text[:80]) for r, _ in outcomes if r.status_code != 200]
    assert len(served) + len(refused) == len(calls), statuses
    assert len(served) >= MAX_IN_FLIGHT and refused
    assert all(int(r.headers["retry-after"]) > 0 for r, _ in refused)
    assert "limit of 6 calls" in refused[0][0].json()["detail"]
    assert max(s for _, s in refused) < min(served)  # refused before any call was done


async def test_a_passed_deadline_cancels_the_engine_work(target, tokenizer):
    messages, documents = conversation(tokenizer, 2000, skip=20)
    with client(target) as acme, pytest.raises(AloraError) as e:
        acme.run_intrinsic("answerability", messages, documents, timeout_s=0.5)
    assert e.value.code == Code.DEADLINE_EXCEEDED
    await until_engine_idle()


async def test_cancelling_a_stream_aborts_the_generation(target):
    counting = [("user", "Count from 1 to 3000, separated by commas, and never stop early.")]
    async with AsyncAloraClient(target, token=TOKENS["acme"]) as acme:
        stream = acme.generate(counting, max_tokens=3000)
        received = [await anext(stream) for _ in range(5)]
        assert (await worker_stats())["in_flight"] == 1
        await stream.aclose()  # cancels the call
    assert all(chunk.text for chunk in received)
    seconds = await until_engine_idle()
    assert seconds < 10  # 3000 tokens would take minutes here


async def until_engine_idle(timeout_s: float = 30) -> float:
    started = time.perf_counter()
    while (await worker_stats())["in_flight"]:
        assert time.perf_counter() - started < timeout_s, "the engine kept working"
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


# -- robustness --------------------------------------------------------------------------


async def test_many_concurrent_clients_get_exact_results(target, tokenizer):
    mixes = [["answerability"], ["uncertainty", "query_rewrite"], ["answerability", "citations"]]
    calls = [(mixes[i % 3], *conversation(tokenizer, 500, skip=60 + i)) for i in range(6)]
    with client(target) as acme:  # alone first: the reference results
        alone = [acme.run_intrinsics(names, m, d) for names, m, d in calls]

    async def run(names, messages, documents):
        async with AsyncAloraClient(target, token=TOKENS["acme"]) as caller:
            return await caller.run_intrinsics(names, messages, documents)

    together = await asyncio.gather(*(run(*call) for call in calls))
    for reference, concurrent in zip(alone, together, strict=True):
        assert [r.raw_output for r in concurrent] == [r.raw_output for r in reference]


ROLES = st.sampled_from(["user", "assistant", "system", "wizard", ""])
MESSAGES = st.lists(
    st.builds(pb.Message, role=ROLES, content=st.text(max_size=200)), min_size=0, max_size=4
)
DOCUMENTS = st.lists(
    st.builds(pb.Document, doc_id=st.text(max_size=8), text=st.text(max_size=200)), max_size=2
)
NAMED = st.lists(st.sampled_from([*NAMES, "telepathy", "", "ANSWERABILITY"]), max_size=3)
ALLOWED = {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED}


def raw_stub(target: str):
    channel = grpc.insecure_channel(target)
    return intrinsics_pb2_grpc.IntrinsicsStub(channel), (
        ("authorization", "Bearer " + TOKENS["acme"]),
    )


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(names=NAMED, messages=MESSAGES, documents=DOCUMENTS, raw=st.binary(max_size=64))
def test_fuzzed_requests_get_clear_errors_and_the_server_keeps_serving(
    target, names, messages, documents, raw
):
    stub, metadata = raw_stub(target)
    request = pb.RunIntrinsicsRequest(
        intrinsics=names, conversation=pb.Conversation(messages=messages, documents=documents)
    )
    try:
        stub.RunIntrinsics(request, metadata=metadata, timeout=120)
    except grpc.RpcError as error:
        assert error.code() in ALLOWED, error.details()
    # Bytes that may not even parse as the request message.
    with grpc.insecure_channel(target) as channel:
        run = channel.unary_unary("/alora.v1.Intrinsics/RunIntrinsics")
        try:
            run(raw, metadata=metadata, timeout=120)
        except grpc.RpcError as error:
            assert error.code() in ALLOWED, error.details()


def test_after_the_fuzzing_the_server_is_healthy_and_serving(target):
    assert health(target, "alora.v1.Intrinsics") == health_pb2.HealthCheckResponse.SERVING
    with client(target) as acme:
        result = acme.run_intrinsic(
            "uncertainty", [("user", "Is water wet?"), ("assistant", "Yes.")]
        )
    assert 0 <= result_value(result)["certainty"] <= 1


# -- gRPC conventions --------------------------------------------------------------------


def health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_reflection_lets_a_generic_client_discover_and_call_the_api(target):
    """What grpcurl does: services and message types from reflection, then a call."""
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"alora.v1.Intrinsics", "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("alora.v1.Intrinsics").methods_by_name["ListIntrinsics"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            "/alora.v1.Intrinsics/ListIntrinsics",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(request_class(), metadata=raw_stub(target)[1], timeout=30)
    assert sorted(i.name for i in response.intrinsics) == sorted(NAMES)


async def test_tls_and_mutual_tls_in_front_of_the_same_engines(target, tmp_path):
    from alora_serve.gateway.admission import Admission
    from alora_serve.gateway.auth import TokenTable
    from alora_serve.gateway.server import start_gateway
    from alora_serve.gateway.servicer import IntrinsicsServicer
    from tests.support.handle_backend import IngressHandleBackend
    from tests.support.pki import make_pki

    pki = make_pki("alora.test")
    files = pki.write(tmp_path)
    catalog = await handle("ingress").catalog.remote()
    servicer = IntrinsicsServicer(
        IngressHandleBackend(handle("ingress")), catalog, TokenTable(), Admission(4)
    )
    trusted = ClientTLS(root_certificates=pki.ca, server_name_override="alora.test")
    with_cert = ClientTLS(
        root_certificates=pki.ca,
        server_name_override="alora.test",
        certificate_chain=pki.client_chain,
        private_key=pki.client_key,
    )
    for mutual in (False, True):
        tls = TLSFiles(
            cert_file=files["cert"],
            key_file=files["key"],
            client_ca_file=files["ca"] if mutual else None,
        )
        gateway = await start_gateway(GatewayConfig(port=0, tls=tls), servicer)
        address = f"127.0.0.1:{gateway.port}"
        try:
            async with AsyncAloraClient(address, tls=with_cert if mutual else trusted) as good:
                assert len(await good.list_intrinsics()) == len(NAMES)
            refused = [AsyncAloraClient(address, max_attempts=1)]  # plaintext
            if mutual:
                refused.append(AsyncAloraClient(address, tls=trusted, max_attempts=1))
            for bad in refused:
                async with bad:
                    with pytest.raises(AloraError) as e:
                        await bad.list_intrinsics(timeout_s=10)
                    assert e.value.code == Code.UNAVAILABLE
        finally:
            await gateway.stop()


def test_graceful_shutdown_finishes_in_flight_calls_and_refuses_new_ones(target):
    """Last: deletes the application."""
    import threading

    from ray import serve

    story = [("user", "Tell me a long story about a lighthouse keeper and a storm.")]
    with client(target) as acme:
        stream = acme.generate(story, max_tokens=120)
        first = next(stream)
        deleting = threading.Thread(target=serve.delete, args=(APP,))
        deleting.start()
        deadline = time.monotonic() + 60
        while serving(target):
            assert time.monotonic() < deadline, "the gateway never started shutting down"
            time.sleep(0.05)
        with client(target, max_attempts=1) as late, pytest.raises(AloraError) as e:
            late.list_intrinsics(timeout_s=10)
        assert e.value.code == Code.UNAVAILABLE
        rest = list(stream)  # the call in flight runs to its end
    deleting.join(timeout=120)
    assert first.text and rest[-1].finish_reason in {"stop", "length"}
    assert rest[-1].usage.generated_tokens > len(rest) // 2


def serving(target: str) -> bool:
    try:
        return health(target) == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
