"""The Locust user: a RAG backend replaying real conversations over the public gRPC API
with the project's SDK. Each turn: the base model's answer as a stream (time to first
token and total), then one intrinsic call or one composed call. Locust's documented gRPC
pattern: grpc patched for gevent, an interceptor firing ``events.request`` for unary
calls (streams fire their own)."""

from __future__ import annotations

import functools
import json
import random
import time
from pathlib import Path
from typing import Any

import gevent
import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel exists: calls yield to other users

from locust import LoadTestShape, User, events, task  # noqa: E402 (after the patch)
from locust.env import Environment  # noqa: E402

from alora_serve.client import AloraClient, AloraError, ClientTLS  # noqa: E402
from alora_serve.loadtest import MTRAG_REFERENCE  # noqa: E402
from alora_serve.loadtest.conversations import (  # noqa: E402
    Conversation,
    load_conversations,
    turn_arguments,
)
from alora_serve.loadtest.profiles import MAX_USERS, CallMix, Pacer, stage_windows  # noqa: E402
from alora_serve.loadtest.samples import Sample, Samples  # noqa: E402

# gRPC's gevent support waits for each call in gevent's thread pool, whose default of 10
# threads let calls beyond the tenth wait for a thread: the overload run measured quick
# refusals as seconds, behind other users' long Generate streams. One thread per call a
# user can have in flight, and room for Locust's own (threads start only when needed).
gevent.get_hub().threadpool.maxsize = MAX_USERS + 32

CALL_TIMEOUT_S = 60.0  # the SDK's default deadline
RECORDED = Samples()  # this process's calls (one Locust process per run)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--mtrag", default=MTRAG_REFERENCE)
    parser.add_argument("--call-mix", default="{}", help="CallMix as JSON")
    parser.add_argument("--max-calls", type=int, default=1000)
    parser.add_argument(
        "--stages", default='[{"users": 1, "duration_s": 60}]', help="[Stage, ...] as JSON"
    )
    parser.add_argument("--samples-out", default="")
    parser.add_argument("--token", default="", help="bearer token (or ALORA_TOKEN)")
    parser.add_argument("--tls-ca", default="", help="PEM file of the server's CA")
    parser.add_argument("--verify-composed", action="store_true")
    parser.add_argument("--seed", type=int, default=0)


@events.request.add_listener
def _keep(name, response_time, exception, context=None, **_kwargs) -> None:
    code = "OK" if exception is None else _code(exception)
    started = (context or {}).get("started_at", time.time() - response_time / 1000)
    RECORDED.add(Sample(name, started, response_time / 1000, code))
    environment = (context or {}).get("environment")
    if environment is not None and len(RECORDED.kept) >= environment.parsed_options.max_calls:
        _CallCap.reached(environment)


class _CallCap:
    """The run's call cap: the first call to reach it ends the run; the calls still
    finishing meanwhile only add their samples."""

    hit = False

    @classmethod
    def reached(cls, environment: Environment) -> None:
        if not cls.hit:
            cls.hit = True
            environment.runner.quit()


@events.user_error.add_listener
def _failed_task(user_instance, exception, tb, **_kwargs) -> None:
    """A task that raised (a bug in the load test, not a call's status) counts as an
    error of its own kind, so a run never looks clean because its checks broke."""
    RECORDED.add(Sample("task error", time.time(), 0.0, type(exception).__name__))


@events.quitting.add_listener
def _write(environment, **_kwargs) -> None:
    if environment.parsed_options.samples_out:
        RECORDED.write(Path(environment.parsed_options.samples_out))


def _code(exception: BaseException) -> str:
    if isinstance(exception, AloraError):
        return exception.code.name
    if isinstance(exception, grpc.RpcError):
        return exception.code().name
    return type(exception).__name__


class _Timed(grpc.UnaryUnaryClientInterceptor):
    """Fires Locust's request event for every unary call, named by method and what it
    runs (an intrinsic, or how many are composed)."""

    def __init__(self, environment: Environment) -> None:
        self._environment = environment

    def intercept_unary_unary(self, continuation, call_details, request):
        started_at, started = time.time(), time.perf_counter()
        outcome = continuation(call_details, request)
        error = outcome.exception()  # waits for the answer (a greenlet switch)
        self._environment.events.request.fire(
            request_type="grpc",
            name=_call_name(call_details.method, request),
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0 if error else outcome.result().ByteSize(),
            exception=error,
            context={"started_at": started_at, "environment": self._environment},
        )
        return outcome


def _call_name(method: str, request: Any) -> str:
    short = method.rsplit("/", 1)[-1]
    if short == "RunIntrinsic":
        return f"RunIntrinsic/{request.intrinsic}"
    if short == "RunIntrinsics":
        return f"RunIntrinsics/{len(request.intrinsics)} composed"
    return short


# Parsed once per process, not by each user (a run may start dozens).
_stages = functools.cache(json.loads)
_conversations = functools.cache(load_conversations)


def _stage(environment: Environment) -> dict | None:
    """The stage the run is in ({"users", "duration_s", "turns_per_s"}), None after the
    last."""
    elapsed = environment.shape_class.get_run_time()
    windows = stage_windows(_stages(environment.parsed_options.stages))
    return next((stage for stage, begin, end in windows if begin <= elapsed < end), None)


class StagedShape(LoadTestShape):
    """Steps through the profile's stages (users for seconds), then ends the run."""

    def tick(self) -> tuple[int, float] | None:
        stage = _stage(self.runner.environment)
        if stage is None:
            return None
        return stage["users"], self.runner.environment.parsed_options.spawn_rate


class RagUser(User):
    """One backend session at a time: a conversation replayed turn by turn."""

    started = 0  # users started in this process: each gets its own seeded choices

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.mix = CallMix.model_validate(json.loads(options.call_mix))
        RagUser.started += 1
        self.turn_started = time.monotonic()
        self.random = random.Random(f"{options.seed}-{RagUser.started}")
        self.pacer = Pacer(self.random, self.mix)
        self.conversations = _conversations(Path(options.mtrag))
        tls = None
        if options.tls_ca:
            tls = ClientTLS(root_certificates=Path(options.tls_ca).read_bytes())
        self.client = AloraClient(
            self.host,
            token=options.token or None,
            tls=tls,
            timeout_s=CALL_TIMEOUT_S,
            interceptors=[_Timed(self.environment)],
        )
        self._begin(self.random.choice(self.conversations))

    def on_stop(self) -> None:
        self.client.close()

    def wait_time(self) -> float:
        stage = _stage(self.environment)
        return self.pacer.pause_s(stage, self.turn_started, time.monotonic())

    def _begin(self, conversation: Conversation) -> None:
        self.conversation, self.next_turn, self.messages = conversation, 0, []

    @task
    def turn(self) -> None:
        self.turn_started = time.monotonic()
        if self.next_turn >= len(self.conversation.turns):
            self._begin(self.random.choice(self.conversations))
        turn = self.conversation.turns[self.next_turn]
        self.next_turn += 1
        self.messages.append(("user", turn.question))
        answer = self._generate()
        if answer is None:
            self.messages.pop()
            return
        self.messages.append(("assistant", answer))
        if self.random.choices((True, False), (self.mix.single_weight, self.mix.composed_weight))[
            0
        ]:
            self._run([self.random.choice(self.mix.single)], turn.documents)
        else:
            self._composed(turn.documents)

    def _generate(self) -> str | None:
        """The base model's turn, streamed; fires "Generate/first token" and
        "Generate/total"."""
        started_at, started = time.time(), time.perf_counter()
        text, first = [], None
        try:
            for chunk in self.client.generate(self.messages, max_tokens=self.mix.max_tokens):
                if first is None:
                    first = time.perf_counter() - started
                    self._fire("Generate/first token", started_at, first, None)
                text.append(chunk.text)
        except AloraError as error:
            self._fire("Generate/total", started_at, time.perf_counter() - started, error)
            return None
        self._fire("Generate/total", started_at, time.perf_counter() - started, None)
        return "".join(text)

    def _run(self, intrinsics: list[str], documents) -> list | None:
        arguments = turn_arguments(intrinsics, documents)
        intrinsics = list(arguments)
        try:
            if len(intrinsics) == 1:
                (name,) = intrinsics
                call = self.client.run_intrinsic(name, self.messages, documents, arguments[name])
                return [call]
            return self.client.run_intrinsics(intrinsics, self.messages, documents, arguments)
        except AloraError:
            return None  # counted by the interceptor

    def _composed(self, documents) -> None:
        composed = self._run(self.mix.composed, documents)
        if composed is None or not self.environment.parsed_options.verify_composed:
            return
        started_at, started = time.time(), time.perf_counter()
        for result in composed:
            (alone,) = self._run([result.intrinsic], documents) or [None]
            if alone is None or alone.raw_output != result.raw_output:
                error = AssertionError(f"{result.intrinsic}: composed result differs from alone")
                self._fire("composed equals alone", started_at, 0.0, error)
                return
        self._fire("composed equals alone", started_at, time.perf_counter() - started, None)

    def _fire(self, name: str, started_at: float, seconds: float, error) -> None:
        self.environment.events.request.fire(
            request_type="check" if name.startswith("composed") else "grpc-stream",
            name=name,
            response_time=seconds * 1000,
            response_length=0,
            exception=error,
            context={"started_at": started_at, "environment": self.environment},
        )
