"""What an operator sees of the main job (`alora-serve serve`, the embedded default): a
real Prometheus server scraping its metrics endpoint with the project's rules loaded,
an OTLP receiver getting its traces (the standard OTEL_EXPORTER_OTLP_ENDPOINT set), and
its logs. Calls go through the public gRPC API, as a client makes them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from alora.v1 import intrinsics_pb2_grpc

from alora_serve.client import AloraClient, AloraError
from alora_serve.client import requests as rq
from deploy.observability.dashboard import panel_queries
from deploy.observability.promql import alerting_rules, metric_names, recording_rules
from tests.support import otlp, prometheus
from tests.support.conversations import mtrag_tasks
from tests.support.main_job import MainJob, running_main_job

pytestmark = pytest.mark.engine

RULES = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "rules.yml"
SENTINEL = f"quokka{uuid.uuid4().hex[:10]}"  # text no log may ever hold
PUBLISHED_S = 60  # replicas publish every 5 s, Ray exports every 10 s, Prometheus scrapes 1 s
# Series that appear only after their first event (a refusal for lack of room).
EVENT_ONLY = {"ray_alora_gateway_rejected_calls_total"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[otlp.Receiver]:
    with otlp.receiving() as received:
        yield received


@pytest.fixture(scope="module")
def main_job(receiver) -> Iterator[MainJob]:
    with running_main_job({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}) as job:
        yield job


@pytest.fixture(scope="module")
def server(main_job, tmp_path_factory) -> Iterator[prometheus.Prometheus]:
    prometheus.require_server()
    workdir = tmp_path_factory.mktemp("prometheus")
    with prometheus.running([main_job.metrics_address], workdir, [RULES]) as running:
        yield running


def long_conversation() -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """A real MTRAG conversation of about 1k prompt tokens, with the sentinel in its
    question and its document."""
    task = next(t for t in mtrag_tasks() if sum(len(c["text"]) for c in t["contexts"]) > 6000)
    document = " ".join(c["text"] for c in task["contexts"])[:3600]
    question = next(t["text"] for t in task["input"] if t["speaker"] == "user")
    messages = [("user", f"{question} ({SENTINEL})")]
    return messages, [{"doc_id": "d1", "text": f"{SENTINEL}. {document}"}]


def grpc_call(job: MainJob, intrinsics: list[str], metadata: tuple = ()):
    """(results, the call's initial metadata) of one RunIntrinsics."""
    messages, documents = long_conversation()
    request = rq.run_intrinsics_request(intrinsics, messages, documents, None)
    with grpc.insecure_channel(job.grpc_target) as channel:
        stub = intrinsics_pb2_grpc.IntrinsicsStub(channel)
        response, call = stub.RunIntrinsics.with_call(request, timeout=120, metadata=metadata)
    return list(response.results), dict(call.initial_metadata())


def answerability(server: prometheus.Prometheus, metric: str) -> float:
    return server.value(f'sum(ray_{metric}{{intrinsic="answerability"}})')


def test_a_second_call_on_a_long_conversation_counts_as_reused(main_job, server):
    """The aLoRA win in the counters: the second call on a ~1k-token conversation adds
    its whole base prefix to the reused tokens and only its invocation to the computed
    ones; each call leased the prefix in place, and the bytes show it."""
    requests = 'sum(ray_alora_intrinsic_requests_total{code="OK",intrinsic="answerability"})'
    moved_bytes = 'sum(ray_alora_transfer_bytes_total{transport="in_place"})'
    calls = server.wait_for(requests, 1, PUBLISHED_S)  # the main job's self-check
    (first,), _ = grpc_call(main_job, ["answerability"])
    server.wait_for(requests, calls + 1, PUBLISHED_S)
    reused = answerability(server, "alora_intrinsic_prompt_tokens_reused_total")
    computed = answerability(server, "alora_intrinsic_prompt_tokens_computed_total")
    bytes_before = server.value(moved_bytes)

    (second,), _ = grpc_call(main_job, ["answerability"])
    server.wait_for(requests, calls + 2, PUBLISHED_S)
    prompt = second.usage.prompt_tokens
    assert prompt > 900 and first.usage.reused_prompt_tokens == 0
    reused_added = answerability(server, "alora_intrinsic_prompt_tokens_reused_total") - reused
    computed_added = (
        answerability(server, "alora_intrinsic_prompt_tokens_computed_total") - computed
    )
    assert reused_added == second.usage.reused_prompt_tokens > prompt - 12
    assert 0 < computed_added <= 12  # the invocation's tokens
    assert server.wait_for(moved_bytes, bytes_before + 1, PUBLISHED_S) > bytes_before
    ratio = server.wait_for(
        'max(intrinsic:alora_prompt_tokens_reuse_ratio:rate5m{intrinsic="answerability"})',
        0.01,
        PUBLISHED_S,
    )
    assert 0 < ratio < 1


def test_every_metric_the_dashboard_and_rules_read_is_scraped(main_job, server):
    """Read after real calls (the previous test's, one more, one that fails): each name a
    panel or rule needs is among what Prometheus scraped, the engines' vLLM metrics per
    role included."""
    grpc_call(main_job, ["answerability", "uncertainty"])
    with AloraClient(main_job.grpc_target) as client, pytest.raises(AloraError) as failed:
        client.run_intrinsics(["telepathy"], [("user", "Can you read minds?")])
    assert failed.value.code == grpc.StatusCode.NOT_FOUND
    assert len(failed.value.request_id) == 32  # to quote when asking the operator
    server.wait_for(
        'sum(ray_alora_intrinsic_failures_total{intrinsic="_unknown",reason="UNKNOWN_INTRINSIC"})',
        1,
        PUBLISHED_S,
    )
    server.wait_for(
        'count(count by (role) (ray_vllm_num_requests_running{role=~"prefill|decode"}))',
        2,
        PUBLISHED_S,
    )
    rules = recording_rules(RULES)
    needed = {
        name
        for expr in [q for _, q in panel_queries()] + list(alerting_rules(RULES).values())
        for name in metric_names(expr, rules)
    }
    missing = sorted(needed - server.names() - EVENT_ONLY)
    assert not missing, f"read by panels or rules but never scraped: {missing}"
    groups = server.query("count by (role) (ray_alora_kv_store_bytes)")
    assert {g["metric"]["role"] for g in groups} == {"prefill", "decode"}


def test_logs_follow_a_call_by_its_request_id_and_never_hold_its_text(main_job):
    request_id = f"obs-{uuid.uuid4().hex}"
    _, metadata = grpc_call(
        main_job, ["answerability", "uncertainty"], (("x-request-id", request_id),)
    )
    assert metadata["x-request-id"] == request_id
    records = _json_records(main_job.log_path, request_id, 5)
    deployments = {r.get("deployment") for r in records}
    assert {"ingress", "decode-answerability", "decode-rag-checks", "prefill"} <= deployments
    finished = next(r for r in records if r["message"] == "intrinsics finished")
    assert finished["code"] == "OK" and len(finished["tenant_hash"]) == 12
    assert {r["intrinsic"] for r in finished["results"]} == {"answerability", "uncertainty"}
    assert set(finished["results"][0]["phases_s"]) >= {"queue", "base_kv", "decode"}
    over_http = httpx.post(
        f"{main_job.url}/v1/intrinsics:run",
        json={
            "intrinsics": ["uncertainty"],
            "request": {"messages": [{"role": "user", "content": f"Sure? {SENTINEL}"}]},
        },
        headers={"x-request-id": f"{request_id}-http"},
        timeout=120,
    )
    assert (
        over_http.status_code == 200 and over_http.headers["x-request-id"] == f"{request_id}-http"
    )
    http_records = _json_records(main_job.log_path, f"{request_id}-http", 3)
    assert {"ingress", "decode-rag-checks"} <= {r.get("deployment") for r in http_records}
    for log in [main_job.log_path, *Path("/tmp/ray/session_latest/logs").rglob("*")]:
        if log.is_file():
            assert SENTINEL not in log.read_text(errors="replace"), f"conversation in {log}"


def _json_records(log: Path, request_id: str, minimum: int) -> list[dict]:
    """The JSON records about ``request_id`` in the main job's log (Ray forwards each
    worker's lines, prefixed with the worker's name), once there are ``minimum``."""
    deadline = time.monotonic() + 20
    while True:
        records = [
            json.loads(line[line.index("{") :])
            for line in log.read_text(errors="replace").splitlines()
            if request_id in line and "{" in line
        ]
        if len(records) >= minimum or time.monotonic() > deadline:
            return records
        time.sleep(1)


def test_a_composed_call_is_one_trace_across_every_hop(main_job, receiver):
    """A client's trace context is continued: gateway -> ingress -> one span per decode
    worker -> the prefill leases each worker took."""
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    grpc_call(main_job, ["answerability", "uncertainty"], (("traceparent", parent),))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = [s for s in receiver.spans if s.trace_id == trace_id]
        if sum(s.name == "decode.run_many" for s in spans) == 2 and any(
            s.name == "prefill.lease" for s in spans
        ):
            break
        time.sleep(1)
    by_id = {s.span_id: s for s in spans}

    def parent_of(span: otlp.ReceivedSpan) -> str:
        return by_id[span.parent_id].name if span.parent_id in by_id else "client"

    tree = sorted((s.service, s.name, parent_of(s)) for s in spans)
    assert ("alora-serve-ingress", "alora.v1.Intrinsics/RunIntrinsics", "client") in tree
    assert (
        "alora-serve-ingress",
        "ingress.run_many",
        "alora.v1.Intrinsics/RunIntrinsics",
    ) in tree
    workers = [t for t in tree if t[1] == "decode.run_many"]
    assert workers == [("alora-serve-decode", "decode.run_many", "ingress.run_many")] * 2, tree
    leases = {t for t in tree if t[1] == "prefill.lease"}
    assert leases == {("alora-serve-prefill", "prefill.lease", "decode.run_many")}, tree
