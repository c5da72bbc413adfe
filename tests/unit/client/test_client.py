"""The Python client against a real grpc.aio server (a small test servicer on 127.0.0.1,
in a thread with its own event loop, so that the blocking client can call it too)."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from alora.v1 import intrinsics_pb2 as pb
from alora.v1 import intrinsics_pb2_grpc
from google.protobuf import json_format

from alora_serve.client import (
    AloraClient,
    AloraError,
    AsyncAloraClient,
    ClientTLS,
    result_value,
)
from alora_serve.client import channel as ch
from alora_serve.gateway.status import CallError, abort
from tests.support.pki import PKI, make_pki

ALWAYS = 1 << 30
UNAVAILABLE = CallError(
    grpc.StatusCode.UNAVAILABLE, "REPLICA_UNAVAILABLE", "no replica is up", retry_after_s=0.01
)
MESSAGES = [("user", "Who wrote Hamlet?")]
DOCUMENTS = [{"doc_id": "1", "text": "Hamlet is by Shakespeare."}]
SERVER_NAME = "alora.test"


class FakeIntrinsics(intrinsics_pb2_grpc.IntrinsicsServicer):
    """Answers from the request; fails, delays or aborts as a test sets it to."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.failures: dict[str, int] = {}  # method -> first attempts that are UNAVAILABLE
        self.error: CallError | None = None  # every call aborts with it
        self.bare_error: tuple[grpc.StatusCode, str] | None = None  # ... or this, no details
        self.delay_s = 0.0
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []
        self.time_remaining: list[float] = []
        self.stream_cancelled = threading.Event()

    async def _enter(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.attempts[method] += 1
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        self.time_remaining.append(context.time_remaining())
        if self.attempts[method] <= self.failures.get(method, 0):
            await abort(context, UNAVAILABLE)
        if self.error is not None:
            await abort(context, self.error)
        if self.bare_error is not None:
            await context.abort(*self.bare_error)
        await asyncio.sleep(self.delay_s)

    async def ListIntrinsics(self, request, context):
        await self._enter("ListIntrinsics", request, context)
        return pb.ListIntrinsicsResponse(
            intrinsics=[pb.IntrinsicInfo(name="answerability", needs_documents=True)]
        )

    async def RunIntrinsic(self, request, context):
        await self._enter("RunIntrinsic", request, context)
        return _result(request.intrinsic, request.arguments)

    async def RunIntrinsics(self, request, context):
        await self._enter("RunIntrinsics", request, context)
        results = [_result(name, request.arguments[name]) for name in request.intrinsics]
        return pb.RunIntrinsicsResponse(results=results)

    async def Generate(self, request, context):
        await self._enter("Generate", request, context)
        try:
            for word in ("Shake", "speare", "."):
                yield pb.GenerateChunk(text=word)
                await asyncio.sleep(self.delay_s)
            yield pb.GenerateChunk(finish_reason="stop", usage=pb.Usage(generated_tokens=3))
        except asyncio.CancelledError:
            self.stream_cancelled.set()
            raise

    async def PrefillConversation(self, request, context):
        await self._enter("PrefillConversation", request, context)
        return pb.PrefillConversationResponse(kept_prompt_tokens=7)


def _result(intrinsic: str, arguments: Any) -> pb.IntrinsicResult:
    result = pb.IntrinsicResult(intrinsic=intrinsic)
    result.result.struct_value.update({"arguments": json_format.MessageToDict(arguments)})
    return result


def _saw_deadlines(time_remaining: list[float], timeouts: list[float]) -> bool:
    """Whether the server's remaining times match the clients' timeouts (the wire's
    grpc-timeout and the server's clock may add a few ms)."""
    return len(time_remaining) == len(timeouts) and all(
        max(0.0, timeout - 1) < t <= timeout + 0.1
        for t, timeout in zip(time_remaining, timeouts, strict=True)
    )


@contextmanager
def serve(
    servicer: FakeIntrinsics, credentials: grpc.ServerCredentials | None = None
) -> Iterator[str]:
    """A grpc.aio server on 127.0.0.1, port 0; yields its target."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        intrinsics_pb2_grpc.add_IntrinsicsServicer_to_server(servicer, server)
        if credentials is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def servicer() -> FakeIntrinsics:
    return FakeIntrinsics()


@pytest.fixture
def target(servicer: FakeIntrinsics) -> Iterator[str]:
    with serve(servicer) as address:
        yield address


@pytest.fixture
def client(target: str) -> Iterator[AloraClient]:
    with AloraClient(target, timeout_s=10) as c:
        yield c


@pytest.fixture
async def aclient(target: str) -> AsyncIterator[AsyncAloraClient]:
    async with AsyncAloraClient(target, timeout_s=10) as c:
        yield c


# -- the blocking client ------------------------------------------------------------------


def test_every_method_sends_the_friendly_inputs_as_protos(
    client: AloraClient, servicer: FakeIntrinsics
) -> None:
    messages = [
        pb.Message(role="system", content="Be brief."),
        {"role": "user", "content": "Who wrote Hamlet?"},
        ("assistant", "Shakespeare."),
    ]
    documents = [pb.Document(doc_id="a", text="A."), {"doc_id": "b", "text": "B."}]

    assert [i.name for i in client.list_intrinsics()] == ["answerability"]

    result = client.run_intrinsic("answerability", messages, documents, {"k": [1, "x", None]})
    assert result.intrinsic == "answerability"
    assert result_value(result) == {"arguments": {"k": [1.0, "x", None]}}
    sent = servicer.requests[-1]
    assert [(m.role, m.content) for m in sent.conversation.messages] == [
        ("system", "Be brief."),
        ("user", "Who wrote Hamlet?"),
        ("assistant", "Shakespeare."),
    ]
    assert [(d.doc_id, d.text) for d in sent.conversation.documents] == [("a", "A."), ("b", "B.")]

    results = client.run_intrinsics(
        ["answerability", "requirement_check"],
        MESSAGES,
        DOCUMENTS,
        {"requirement_check": {"requirement": "be brief"}},
    )
    assert [r.intrinsic for r in results] == ["answerability", "requirement_check"]
    assert result_value(results[1]) == {"arguments": {"requirement": "be brief"}}

    chunks = list(client.generate(MESSAGES, max_tokens=8, temperature=0.5, seed=3))
    assert "".join(c.text for c in chunks) == "Shakespeare."
    assert chunks[-1].finish_reason == "stop"
    sampling = servicer.requests[-1].sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.seed) == (8, 0.5, 3)

    assert client.prefill_conversation(["answerability"], MESSAGES, DOCUMENTS) == 7
    assert list(servicer.requests[-1].intrinsics) == ["answerability"]


def test_unavailable_is_retried_by_every_idempotent_method(servicer: FakeIntrinsics) -> None:
    servicer.failures = dict.fromkeys(ch.RETRIED_METHODS, 2)
    with serve(servicer) as target, AloraClient(target, max_attempts=3) as client:
        assert client.run_intrinsic("answerability", MESSAGES).intrinsic == "answerability"
        client.list_intrinsics()
        client.run_intrinsics(["answerability"], MESSAGES)
        client.prefill_conversation(["answerability"], MESSAGES)
    assert servicer.attempts == dict.fromkeys(ch.RETRIED_METHODS, 3)


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_retries_give_up_after_max_attempts(servicer: FakeIntrinsics, max_attempts: int) -> None:
    servicer.failures = {"RunIntrinsic": ALWAYS}
    with (
        serve(servicer) as target,
        AloraClient(target, max_attempts=max_attempts) as client,
        pytest.raises(AloraError) as raised,
    ):
        client.run_intrinsic("answerability", MESSAGES)
    assert servicer.attempts["RunIntrinsic"] == max_attempts
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert raised.value.reason == "REPLICA_UNAVAILABLE"
    assert raised.value.retry_after_s == pytest.approx(0.01)
    assert isinstance(raised.value.__cause__, grpc.RpcError)


def test_generate_is_not_retried(client: AloraClient, servicer: FakeIntrinsics) -> None:
    servicer.failures = {"Generate": 1}
    with pytest.raises(AloraError) as raised:
        list(client.generate(MESSAGES))
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts["Generate"] == 1


def test_other_codes_are_not_retried(client: AloraClient, servicer: FakeIntrinsics) -> None:
    servicer.error = CallError(grpc.StatusCode.INTERNAL, "WORKER_FAILED", "the worker died")
    with pytest.raises(AloraError):
        client.run_intrinsic("answerability", MESSAGES)
    assert servicer.attempts["RunIntrinsic"] == 1


def test_every_call_carries_a_deadline(target: str, servicer: FakeIntrinsics) -> None:
    with AloraClient(target, timeout_s=7) as client:
        client.run_intrinsic("answerability", MESSAGES)
        client.run_intrinsic("answerability", MESSAGES, timeout_s=2)
        list(client.generate(MESSAGES, timeout_s=3))
        client.prefill_conversation(["answerability"], MESSAGES)
    assert _saw_deadlines(servicer.time_remaining, [7, 2, 3, 7]), servicer.time_remaining


def test_a_call_past_its_deadline_fails(client: AloraClient, servicer: FakeIntrinsics) -> None:
    servicer.delay_s = 1.0
    with pytest.raises(AloraError) as raised:
        client.run_intrinsic("answerability", MESSAGES, timeout_s=0.1)
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert servicer.attempts["RunIntrinsic"] == 1


def test_the_bearer_token_is_sent_on_every_call(target: str, servicer: FakeIntrinsics) -> None:
    with AloraClient(target, token="tok-0123456789abcdef") as client:
        client.list_intrinsics()
        list(client.generate(MESSAGES))
    with AloraClient(target) as anonymous:
        anonymous.list_intrinsics()
    with_token, streamed, without = servicer.metadata
    assert with_token["authorization"] == "Bearer tok-0123456789abcdef"
    assert streamed["authorization"] == "Bearer tok-0123456789abcdef"
    assert "authorization" not in without


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "BAD_ARGUMENTS",
                "the arguments do not match the schema",
                field_violations=(("arguments.requirement", "must be a string"),),
            ),
            {"field_violations": [("arguments.requirement", "must be a string")]},
        ),
        (
            CallError(
                grpc.StatusCode.NOT_FOUND,
                "UNKNOWN_INTRINSIC",
                "no intrinsic 'nope'",
                resource=("intrinsic", "nope"),
            ),
            {"resource": ("intrinsic", "nope")},
        ),
        (
            CallError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED", "too busy", retry_after_s=1.5
            ),
            {"retry_after_s": 1.5},
        ),
    ],
)
def test_errors_carry_the_details_the_server_sent(
    client: AloraClient, servicer: FakeIntrinsics, error: CallError, expected: dict[str, Any]
) -> None:
    servicer.error = error
    with pytest.raises(AloraError) as raised:
        client.run_intrinsic("answerability", MESSAGES)
    found = raised.value
    assert (found.code, found.reason, found.message) == (error.code, error.reason, error.message)
    details = {
        "field_violations": [],
        "resource": None,
        "retry_after_s": None,
    } | expected
    assert {k: getattr(found, k) for k in details} == details
    text = str(found)
    assert f"{error.code.name} {error.reason}: {error.message}" in text
    assert all(field in text for field, _ in found.field_violations)
    assert pickle.loads(pickle.dumps(found)).__dict__ == found.__dict__


def test_an_error_without_details(client: AloraClient, servicer: FakeIntrinsics) -> None:
    servicer.bare_error = (grpc.StatusCode.PERMISSION_DENIED, "not for you")
    with pytest.raises(AloraError) as raised:
        client.list_intrinsics()
    found = raised.value
    assert (found.code, found.message, found.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "not for you",
        None,
    )
    assert (found.field_violations, found.resource, found.retry_after_s) == ([], None, None)
    assert str(found) == "PERMISSION_DENIED: not for you"


def test_closing_a_stream_early_cancels_the_call(
    client: AloraClient, servicer: FakeIntrinsics
) -> None:
    servicer.delay_s = 0.2
    stream = client.generate(MESSAGES)
    assert next(stream).text == "Shake"
    stream.close()  # type: ignore[attr-defined]
    assert servicer.stream_cancelled.wait(5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.run_intrinsic("answerability", "Who wrote Hamlet?"), "messages: expected"),
        (lambda c: c.run_intrinsic("answerability", []), "at least one message"),
        (lambda c: c.run_intrinsic("answerability", [("bot", "hi")]), r"messages\[0\]: role"),
        (lambda c: c.run_intrinsic("answerability", [{"role": "user"}]), "missing"),
        (lambda c: c.run_intrinsic("answerability", [("user", 3)]), "content must be a str"),
        (lambda c: c.run_intrinsic("answerability", [42]), "expected a pb.Message"),
        (
            lambda c: c.run_intrinsic("a", [{"role": "user", "content": "x", "name": "y"}]),
            "unexpected",
        ),
        (lambda c: c.run_intrinsic("answerability", MESSAGES, ["text"]), "documents"),
        (lambda c: c.run_intrinsic("a", MESSAGES, [{"doc_id": 1, "text": "x"}]), "doc_id"),
        (lambda c: c.run_intrinsic("", MESSAGES), "intrinsic"),
        (lambda c: c.run_intrinsic("a", MESSAGES, (), {"x": object()}), "JSON-like"),
        (lambda c: c.run_intrinsic("a", MESSAGES, (), {1: "x"}), "keys must be str"),
        (lambda c: c.run_intrinsic("a", MESSAGES, (), ["x"]), "expected a dict"),
        (lambda c: c.run_intrinsics("answerability", MESSAGES), "intrinsics: expected a list"),
        (lambda c: c.run_intrinsics([], MESSAGES), "at least one intrinsic"),
        (lambda c: c.run_intrinsics(["a"], MESSAGES, (), {"b": {}}), "not among"),
        (lambda c: c.generate(MESSAGES, max_tokens=0), "max_tokens"),
        (lambda c: c.generate(MESSAGES, temperature=-1), "temperature"),
        (lambda c: c.generate(MESSAGES, top_p=0), "top_p"),
        (lambda c: c.generate(MESSAGES, top_p=1.5), "top_p"),
        (lambda c: c.generate(MESSAGES, seed="7"), "seed"),
        (lambda c: c.generate(MESSAGES, timeout_s=0), "timeout_s"),
        (lambda c: c.prefill_conversation("answerability", MESSAGES), "intrinsics"),
        (lambda c: c.list_intrinsics(timeout_s=-1), "timeout_s"),
    ],
)
def test_bad_inputs_raise_value_error_before_any_call(
    client: AloraClient, servicer: FakeIntrinsics, call: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        call(client)
    assert not servicer.attempts


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 6}, "max_attempts"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("inf")}, "timeout_s"),
        ({"token": ""}, "token"),
        ({"token": "two words"}, "token"),
    ],
)
def test_bad_client_settings_raise_value_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AloraClient("127.0.0.1:1", **kwargs)


def test_client_tls_needs_chain_and_key_together() -> None:
    with pytest.raises(ValueError, match="together"):
        ClientTLS(certificate_chain=b"cert")


def test_the_service_config_retries_only_idempotent_methods() -> None:
    import json

    config = json.loads(ch.service_config(4))["methodConfig"][0]
    assert {n["method"] for n in config["name"]} == set(ch.RETRIED_METHODS)
    assert "Generate" not in ch.RETRIED_METHODS
    assert config["retryPolicy"]["maxAttempts"] == 4
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "retryPolicy" not in json.loads(ch.service_config(1))["methodConfig"][0]


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> PKI:
    return make_pki(SERVER_NAME)


def test_tls_end_to_end(pki: PKI, servicer: FakeIntrinsics) -> None:
    tls = ClientTLS(root_certificates=pki.ca, server_name_override=SERVER_NAME)
    with (
        serve(servicer, pki.server_credentials(mutual=False)) as target,
        AloraClient(target, token="tok-0123456789abcdef", tls=tls) as client,
    ):
        assert client.run_intrinsic("answerability", MESSAGES).intrinsic == "answerability"
    assert servicer.metadata[0]["authorization"] == "Bearer tok-0123456789abcdef"


def test_tls_rejects_a_server_the_client_does_not_trust(pki: PKI, servicer: FakeIntrinsics) -> None:
    with (
        serve(servicer, pki.server_credentials(mutual=False)) as target,
        AloraClient(
            target, tls=ClientTLS(root_certificates=pki.client_chain), max_attempts=1
        ) as client,
        pytest.raises(AloraError) as raised,
    ):
        client.list_intrinsics(timeout_s=5)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert not servicer.attempts


def test_mutual_tls_accepts_a_client_certificate_and_rejects_none(
    pki: PKI, servicer: FakeIntrinsics
) -> None:
    with serve(servicer, pki.server_credentials(mutual=True)) as target:
        mutual = ClientTLS(pki.ca, pki.client_chain, pki.client_key, SERVER_NAME)
        with AloraClient(target, tls=mutual) as client:
            assert client.prefill_conversation(["answerability"], MESSAGES) == 7
        anonymous = ClientTLS(root_certificates=pki.ca, server_name_override=SERVER_NAME)
        with (
            AloraClient(target, tls=anonymous, max_attempts=1) as client,
            pytest.raises(AloraError) as raised,
        ):
            client.prefill_conversation(["answerability"], MESSAGES, timeout_s=5)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts["PrefillConversation"] == 1


async def test_async_mutual_tls(pki: PKI, servicer: FakeIntrinsics) -> None:
    with serve(servicer, pki.server_credentials(mutual=True)) as target:
        mutual = ClientTLS(pki.ca, pki.client_chain, pki.client_key, SERVER_NAME)
        async with AsyncAloraClient(target, tls=mutual) as client:
            assert [i.name for i in await client.list_intrinsics()] == ["answerability"]


# -- the asyncio client -------------------------------------------------------------------


async def test_async_every_method(aclient: AsyncAloraClient, servicer: FakeIntrinsics) -> None:
    assert [i.name for i in await aclient.list_intrinsics()] == ["answerability"]
    result = await aclient.run_intrinsic("answerability", MESSAGES, DOCUMENTS, {"k": True})
    assert result_value(result) == {"arguments": {"k": True}}
    results = await aclient.run_intrinsics(["a", "b"], MESSAGES, arguments={"b": {"n": 2}})
    assert [result_value(r) for r in results] == [{"arguments": {}}, {"arguments": {"n": 2.0}}]
    text = [chunk.text async for chunk in aclient.generate(MESSAGES)]
    assert "".join(text) == "Shakespeare."
    assert await aclient.prefill_conversation(["answerability"], MESSAGES) == 7


async def test_async_retries_unavailable_and_gives_up(servicer: FakeIntrinsics) -> None:
    servicer.failures = {"RunIntrinsic": 2, "RunIntrinsics": ALWAYS}
    with serve(servicer) as target:
        async with AsyncAloraClient(target, max_attempts=3) as client:
            await client.run_intrinsic("answerability", MESSAGES)
            with pytest.raises(AloraError) as raised:
                await client.run_intrinsics(["answerability"], MESSAGES)
    assert servicer.attempts == {"RunIntrinsic": 3, "RunIntrinsics": 3}
    assert (raised.value.code, raised.value.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "REPLICA_UNAVAILABLE",
    )


async def test_async_generate_is_not_retried(
    aclient: AsyncAloraClient, servicer: FakeIntrinsics
) -> None:
    servicer.failures = {"Generate": 1}
    with pytest.raises(AloraError) as raised:
        [chunk async for chunk in aclient.generate(MESSAGES)]
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts["Generate"] == 1


async def test_async_deadline_and_token(target: str, servicer: FakeIntrinsics) -> None:
    async with AsyncAloraClient(target, token="tok-0123456789abcdef", timeout_s=7) as client:
        await client.list_intrinsics()
        [chunk async for chunk in client.generate(MESSAGES, timeout_s=2)]
        servicer.delay_s = 1.0
        with pytest.raises(AloraError) as raised:
            await client.run_intrinsic("answerability", MESSAGES, timeout_s=0.1)
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _saw_deadlines(servicer.time_remaining, [7, 2, 0.1]), servicer.time_remaining
    assert {m["authorization"] for m in servicer.metadata} == {"Bearer tok-0123456789abcdef"}


async def test_async_errors_carry_details(
    aclient: AsyncAloraClient, servicer: FakeIntrinsics
) -> None:
    servicer.error = CallError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "BAD_CONVERSATION",
        "the conversation is malformed",
        field_violations=(("conversation.messages[0].role", "unknown role"),),
    )
    with pytest.raises(AloraError) as raised:
        await aclient.prefill_conversation(["answerability"], MESSAGES)
    assert raised.value.reason == "BAD_CONVERSATION"
    assert raised.value.field_violations == [("conversation.messages[0].role", "unknown role")]


async def test_async_bad_inputs_raise_value_error(
    aclient: AsyncAloraClient, servicer: FakeIntrinsics
) -> None:
    with pytest.raises(ValueError, match="messages"):
        await aclient.run_intrinsic("answerability", "Who wrote Hamlet?")
    with pytest.raises(ValueError, match="max_tokens"):
        aclient.generate(MESSAGES, max_tokens=-1)
    assert not servicer.attempts
