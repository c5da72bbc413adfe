"""The main job as a user runs it: `alora-serve serve` with the embedded default (the
disaggregated topology on Ray Serve: a prefill service, a merged answerability worker, a
multi-LoRA worker with the six other built-ins), started once for this module and used
only through what a user has: its console, its HTTP and gRPC APIs, its Prometheus
metrics, its log file and the sockets it opens."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alora_serve.client import AloraClient, result_value
from alora_serve.examples import mellea_intrinsics as mellea_example
from alora_serve.intrinsics.builtins import builtin_names
from alora_serve.intrinsics.embedded_library import shipped_intrinsics
from alora_serve.model import EMBEDDED_MODEL_NAME
from alora_serve.topology.config import load_topology
from alora_serve.topology.metrics import PUBLISH_INTERVAL_S
from alora_serve.training.examples import write_examples
from alora_serve.training.mtrag import EXAMPLES
from tests.support.builtin_calls import (
    ARGUMENTS,
    LORA_WORKER,
    call_body,
    mixed_subsets,
    two_turn_conversation,
)
from tests.support.conversations import DATA
from tests.support.main_job import MainJob, running_main_job
from tests.support.openai_clients import granite_common_call, openai_client

pytestmark = pytest.mark.engine

EVAL_SLICE = 24  # held-out MTRAG examples each shipped intrinsic is scored on
REGRESSION_FLOORS = {  # per shipped intrinsic: its majority class, the macro-F1 it must reach
    "answerability": ("answerable", 0.7),  # 0.83 when it shipped
}
CALL_TIMEOUT_S = 100  # a stalled lease waits 120 s before it falls back: fails first
MAX_IN_FLIGHT = load_topology().gateway.max_in_flight  # the embedded default's admission limit
WORKERS = {"decode-answerability": ["answerability"], "decode-rag-checks": LORA_WORKER}


@pytest.fixture(scope="module")
def main_job() -> Iterator[MainJob]:
    with running_main_job() as job:
        yield job


@pytest.fixture(scope="module")
def conversation() -> dict:
    """The request of the composed-call tests."""
    return two_turn_conversation("composed")


def run(job: MainJob, names: list[str], request: dict) -> tuple[list[dict], float]:
    """(results, seconds at the client) of one POST /v1/intrinsics:run."""
    started = time.perf_counter()
    response = httpx.post(
        f"{job.url}/v1/intrinsics:run", json=call_body(names, request), timeout=CALL_TIMEOUT_S
    )
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json(), seconds


def metric(job: MainJob, name: str, deployment: str, **labels: str) -> float:
    """The sum of ``name``'s series for ``deployment`` (and ``labels``) on the main job's
    Prometheus endpoint."""
    text = httpx.get(job.metrics_url, timeout=30).text
    wanted = {"deployment": deployment, **labels}.items()
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"ray_{name}" and wanted <= sample.labels.items()
    ]
    assert values, f"no {name} for {deployment} {labels} on {job.metrics_url}"
    return sum(values)


def published(job: MainJob, name: str, deployment: str, at_least: float, **labels: str) -> float:
    """The metric's value once it reaches ``at_least`` (replicas publish it every
    ``PUBLISH_INTERVAL_S``)."""
    deadline = time.monotonic() + 6 * PUBLISH_INTERVAL_S
    while (value := metric(job, name, deployment, **labels)) < at_least:
        assert time.monotonic() < deadline, f"{name} of {deployment} stayed at {value}"
        time.sleep(2)
    return value


def base_model(job: MainJob) -> str:
    """The name the base model is served under."""
    return httpx.get(f"{job.url}/health", timeout=30).json()["model"]


def assert_same_results(got: dict, alone: dict) -> None:
    assert got["raw_output"] == alone["raw_output"], got["name"]
    assert _close(got["result"], alone["result"]), (got["name"], got["result"], alone["result"])


def _close(a, b, rel: float = 1e-4) -> bool:
    """Equal; floats to ``rel``: the same tokens' logprobs differ in the sixth digit when
    vLLM computes them in a batch of another size."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel / 100)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
    return a == b


# -- starting -------------------------------------------------------------------------


def test_the_console_shows_progress_and_the_full_log_keeps_the_rest(main_job):
    console = main_job.console
    assert len(console) <= 30, "\n".join(console)
    noise = [line for line in console if re.search(r"\b(INFO|WARNING|DEBUG)\b|pid=", line)]
    assert not noise, "\n".join(noise)
    for deployment in ("prefill", *WORKERS):
        main_job.console_match(rf"^  {deployment} ready after \d+ s; warmed up ")
    warmed = main_job.console_match(r"decode-rag-checks ready after \d+ s; warmed up (.*) in ")
    assert set(warmed.group(1).split(", ")) == {*WORKERS["decode-rag-checks"], "base model"}
    assert main_job.console_match(r"^alora-serve listening on (\S+)").group(1) == main_job.url
    logged = main_job.log_path.read_text(errors="replace")
    assert "vLLM" in logged and "Application 'alora' is ready" in logged  # the noise went here
    assert "Self-check: answerability" in logged  # and the progress too


def test_the_first_calls_are_warm_and_say_they_computed_their_prefix(main_job):
    """The self-check makes the first intrinsic calls of the job on its conversation: its
    workers warmed up before they reported ready, and the calls' base KV was computed
    for them (not reused, though a separate base request computed it)."""
    for name in ("answerability", "uncertainty"):
        usage = main_job.console_match(rf"Self-check: {name} -> .* \((\d+)/(\d+) prompt tokens")
        assert int(usage.group(1)) == 0 and int(usage.group(2)) > 100


def test_every_socket_it_listens_on_is_on_loopback(main_job):
    job = psutil.Process(main_job.process.pid)
    listening = [
        (process.name(), conn.laddr)
        for process in [job, *job.children(recursive=True)]
        for conn in _connections(process)
        if conn.status == psutil.CONN_LISTEN
    ]
    assert len(listening) > 10  # Ray, Serve, vLLM and the gateway were all seen
    exposed = [(n, a) for n, a in listening if not _loopback(a.ip)]
    assert not exposed, exposed


def _connections(process: psutil.Process) -> list:
    try:
        return process.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# -- the public APIs ------------------------------------------------------------------


def test_the_intrinsics_list_reveals_no_server_paths(main_job):
    listed = httpx.get(f"{main_job.url}/v1/intrinsics", timeout=30)
    assert sorted(entry["name"] for entry in listed.json()) == sorted(builtin_names())
    with AloraClient(main_job.grpc_target) as client:
        described = str(client.list_intrinsics())
    for text in (listed.text, described):
        assert str(Path.home()) not in text and "/tmp" not in text and '"path"' not in text


def test_each_built_in_alone_equals_all_seven_composed_within_a_small_factor(
    main_job, conversation
):
    alone = {}
    seconds = {}
    for name in builtin_names():
        (alone[name],), seconds[name] = run(main_job, [name], conversation)
    composed, composed_s = run(main_job, builtin_names(), conversation)
    for result in composed:
        assert_same_results(result, alone[result["name"]])
    slowest = max(seconds.values())
    assert composed_s < 3 * slowest + 5, (composed_s, seconds)


def test_mixed_instruction_subsets_on_one_worker_compose_exactly_without_recompute(
    main_job, conversation
):
    """Every subset of 2-3 of the multi-LoRA worker's intrinsics that mixes ones with an
    instruction and ones without (several prefixes sharing a head, leased together from
    the prefill service), sent at once: each result is the intrinsic's result alone, and
    no worker falls back to computing base KV itself."""
    alone = {n: run(main_job, [n], conversation)[0][0] for n in LORA_WORKER}
    subsets = mixed_subsets(LORA_WORKER)
    assert len(subsets) == 24
    in_place = metric(main_job, "alora_transfer_seconds_count", "decode-rag-checks")
    with ThreadPoolExecutor(MAX_IN_FLIGHT) as pool:  # more at once would be refused
        answers = list(pool.map(lambda s: run(main_job, s, conversation), subsets))
    for subset, (results, _) in zip(subsets, answers, strict=True):
        assert [r["name"] for r in results] == subset
        for result in results:
            assert_same_results(result, alone[result["name"]])
    # Leases read in place (calls that need one prefix at the same time share a lease):
    # once the count has moved and a publishing period has passed, a recompute during
    # the calls would show too.
    published(main_job, "alora_transfer_seconds_count", "decode-rag-checks", in_place + 1)
    time.sleep(PUBLISH_INTERVAL_S + 1)
    for worker in WORKERS:
        assert metric(main_job, "alora_transfer_recomputed_total", worker) == 0


def test_timings_cover_the_whole_call_in_phases_that_add_up(main_job):
    request = two_turn_conversation("timings")
    results, client_s = run(main_job, ["answerability", "uncertainty"], request)
    repeated, _ = run(main_job, ["answerability", "uncertainty"], request)
    for cold, warm in zip(results, repeated, strict=True):
        # The first call computed the conversation's base KV: its time is in base_kv.
        assert cold["timings"]["base_kv_s"] > 2 * warm["timings"]["base_kv_s"]
    for result in results:
        timings = result["timings"]
        phases = ("queue_s", "base_kv_s", "adapter_prefill_s", "decode_s", "other_s")
        assert all(timings[p] >= 0 for p in phases)
        assert math.isclose(sum(timings[p] for p in phases), timings["total_s"], abs_tol=1e-6)
        assert client_s - 0.5 < timings["total_s"] <= client_s
        assert timings["worker_s"] <= timings["total_s"]
    with AloraClient(main_job.grpc_target) as client:
        started = time.perf_counter()
        (result,) = client.run_intrinsics(["uncertainty"], [("user", "Is it late?")])
        client_s = time.perf_counter() - started
    timings = result.timings
    parts = (timings.queue, timings.base_kv, timings.adapter_prefill, timings.decode)
    total = timings.total.ToNanoseconds()
    assert sum(p.ToNanoseconds() for p in parts) + timings.other.ToNanoseconds() == total
    assert client_s - 0.5 < total / 1e9 <= client_s


def test_usage_says_what_each_call_computed_and_what_it_found(main_job):
    fresh = {
        "messages": [
            {"role": "user", "content": f"Is {time.time_ns()} an even number of nanoseconds?"},
            {"role": "assistant", "content": "It is, as every such number ends in zero."},
        ],
        "documents": [{"doc_id": "n", "text": "Clock readings here end in zero."}],
    }
    names = ["answerability", "uncertainty", "context_relevance"]  # both workers
    first, _ = run(main_job, names, fresh)
    assert [r["usage"]["reused_prompt_tokens"] for r in first] == [0, 0, 0]
    again, _ = run(main_job, names, fresh)
    for before, after in zip(first, again, strict=True):
        usage = after["usage"]
        assert usage["prompt_tokens"] == before["usage"]["prompt_tokens"]
        # Only the invocation is computed again: its KV is the adapter's.
        assert 0 < usage["prompt_tokens"] - usage["reused_prompt_tokens"] <= 12


def test_base_chats_report_the_conversation_kv_they_reuse(main_job):
    question = "Tell me about the history of the Eiffel Tower. " * 20  # several KV blocks
    chat = {"messages": [{"role": "user", "content": question}], "max_tokens": 4}
    usages = []
    for _ in range(2):
        answer = httpx.post(f"{main_job.url}/v1/chat/completions", json=chat, timeout=60)
        usages.append(answer.json()["usage"])
    assert usages[0]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = usages[1]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 128 and cached % 128 == 0  # whole vLLM blocks of 128 tokens


def test_http_errors_are_clear_and_the_service_keeps_serving(main_job, conversation):
    url = main_job.url
    hot = {"messages": [{"role": "user", "content": "hi"}], "temperature": 1e308}
    too_hot = httpx.post(f"{url}/v1/chat/completions", json=hot, timeout=30)
    assert too_hot.status_code == 400, too_hot.text
    assert too_hot.json()["error"]["param"] == "temperature", too_hot.text  # OpenAI's shape
    call = {"intrinsics": ["telepathy"], "request": conversation}
    unknown = httpx.post(f"{url}/v1/intrinsics:run", json=call, timeout=30)
    assert unknown.status_code == 404 and "telepathy" in unknown.json()["detail"]
    no_documents = {"intrinsics": ["citations"], "request": {"messages": conversation["messages"]}}
    missing = httpx.post(f"{url}/v1/intrinsics:run", json=no_documents, timeout=30)
    assert missing.status_code == 400 and "needs documents" in missing.json()["detail"]
    results, _ = run(main_job, ["answerability"], conversation)  # still serving
    assert 0 <= results[0]["result"]["answerability_likelihood"] <= 1


def test_fuzzing_the_http_api_gets_4xx_never_5xx(main_job, tmp_path):
    """schemathesis against the OpenAPI spec the server publishes: examples, boundary
    values and random (valid and invalid) inputs; every answer is documented and none is
    a server error. Chats ask for few tokens (tests/support/http_fuzzing_hooks.py)."""
    repo = Path(__file__).resolve().parents[2]
    fuzz = subprocess.run(
        [
            *(Path(sys.executable).with_name("schemathesis"), "run"),
            f"{main_job.url}/openapi.json",
            *("--checks", "not_a_server_error,status_code_conformance"),
            *("--checks", "content_type_conformance,response_schema_conformance"),
            *("--max-examples", "12", "--generation-deterministic"),
            *("--request-timeout", "120", "--max-time", "180"),
            *("--report-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.http_fuzzing_hooks"}
        | {"PYTHONPATH": str(repo)},
    )
    assert fuzz.returncode == 0, fuzz.stdout[-6000:] + fuzz.stderr[-2000:]
    assert "Tested: 5" in fuzz.stdout, fuzz.stdout[-3000:]  # every route but /openapi.json
    results, _ = run(main_job, ["uncertainty"], {"messages": [{"role": "user", "content": "?"}]})
    assert results[0]["name"] == "uncertainty"  # serving after it


def test_the_cli_chat_and_the_readme_grpc_example_work(main_job):
    chat = subprocess.run(
        [sys.executable, "-m", "alora_serve.cli", "chat", "--url", main_job.url, "Capital?"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chat.returncode == 0 and chat.stdout.strip(), chat.stderr
    example = subprocess.run(
        [
            *(sys.executable, "-m", "alora_serve.examples.grpc_client"),
            "--target",
            main_job.grpc_target,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert example.returncode == 0, example.stderr
    answerability = re.search(
        r"answerability: \{'answerability_likelihood': ([\d.]+)\}", example.stdout
    )
    assert answerability and 0 <= float(answerability.group(1)) <= 1, example.stdout
    certainty = re.search(r"uncertainty: \{'certainty': ([\d.]+)\}", example.stdout)
    assert certainty and 0 <= float(certainty.group(1)) <= 1, example.stdout
    assert example.stdout.split("assistant:")[-1].strip()  # the streamed answer


def test_a_locust_smoke_run_serves_every_call_type_without_errors(main_job, tmp_path):
    """`alora-serve loadtest --profile smoke` (about a minute, two users replaying MTRAG
    conversations over gRPC): no errors, every call type made, and every composed call
    equal to its intrinsics called alone; meanwhile the server's processes and metrics
    were watched, and at the end no lease is held and nothing is pinned."""
    mtrag = Path(__file__).resolve().parents[1] / "data" / "mtrag" / "mtrag_un_reference.jsonl"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "alora_serve.cli", "loadtest", "--profile", "smoke"),
            *("--target", main_job.grpc_target, "--out", str(tmp_path), "--mtrag", str(mtrag)),
            *("--metrics-url", main_job.metrics_url, "--verify-composed"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, _failed_run(done, main_job)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors_by_code"] == {}, done.stdout + done.stderr[-4000:]
    made = {name for name, figures in summary["by_type"].items() if figures["calls"]}
    assert {"Generate/first token", "Generate/total", "composed equals alone"} <= made, made
    assert any(name.startswith("RunIntrinsic/") for name in made), made
    assert "RunIntrinsics/3 composed" in made, made
    assert (tmp_path / "locust.html").exists() and (tmp_path / "locust_stats.csv").exists()
    # vLLM titles its engine-core process before anything else; a worker process may be
    # sampled first under its interpreter's name (CI saw "python (pid)" for one)
    engines = [name for name in summary["memory"] if name.startswith("VLLM::EngineCore")]
    watched = {name: figures["samples"] for name, figures in summary["memory"].items()}
    # the prefill service and two decode workers, watched all along (no replica replaced)
    assert len(engines) == 3, (watched, summary["replica_changes"])
    assert len({watched[name] for name in engines}) == 1, watched
    end = summary["metrics_at_end"]
    assert end["replicas"]["decode-answerability"] == 1, end
    assert end["leases"] == {"": 0} and set(end["kv_store_pinned_bytes"].values()) == {0}, end


def _failed_run(done: subprocess.CompletedProcess, main_job: MainJob) -> str:
    log = main_job.log_path.read_text(errors="replace").splitlines()[-40:]
    return (
        f"exit code {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}\n"
        f"the main job's log ends:\n" + "\n".join(log)
    )


# -- the OpenAI-compatible API, through clients no one here wrote ----------------------


def test_the_openai_sdk_lists_the_base_model_and_every_intrinsic_as_its_child(main_job):
    models = openai_client(main_job.url).models.list().data
    base, *intrinsics = models
    assert base.parent is None and base.id == base_model(main_job)
    assert [m.id for m in intrinsics] == builtin_names()
    assert {m.parent for m in intrinsics} == {base.id}
    assert all("/" not in m.root for m in models)  # no server paths


def test_granite_common_s_own_flow_equals_the_native_api_for_every_built_in(main_job):
    """granite-common's IntrinsicsRewriter -> the openai SDK -> its IntrinsicsResultProcessor,
    each built-in on a new conversation after the native gRPC call on it: the same result,
    and the OpenAI call reuses the conversation's KV the native call left. Both are
    counted by the same pipeline."""
    client = openai_client(main_job.url)
    chats = {"method": "POST /v1/chat/completions", "code": "OK"}
    chats_before = metric(main_job, "alora_gateway_calls_total", "ingress", **chats)
    calls_before = metric(main_job, "alora_intrinsic_requests_total", "ingress", code="OK")
    with AloraClient(main_job.grpc_target, timeout_s=CALL_TIMEOUT_S) as native:
        for name in builtin_names():
            request = two_turn_conversation(f"granite-common {name}")
            arguments = ARGUMENTS.get(name, {})
            expected = native.run_intrinsic(
                name, request["messages"], request["documents"], arguments
            )
            result, completion = granite_common_call(client, name, request, arguments)
            assert _close(result, result_value(expected), rel=1e-6), (name, result, expected)
            assert completion.choices[0].message.content == expected.raw_output, name
            assert completion.choices[0].finish_reason == "stop", name
            usage = completion.usage
            cached = usage.prompt_tokens_details.cached_tokens
            assert cached >= usage.prompt_tokens // 2, (name, usage)
    chats_after = chats_before + len(builtin_names())
    published(main_job, "alora_gateway_calls_total", "ingress", chats_after, **chats)
    calls_after = calls_before + 2 * len(builtin_names())  # gRPC's and OpenAI's alike
    published(main_job, "alora_intrinsic_requests_total", "ingress", calls_after, code="OK")


def test_the_openai_sdk_streams_answers_as_it_gets_them_whole(main_job, conversation):
    client = openai_client(main_job.url)
    chat = {"messages": [{"role": "user", "content": "Name three rivers."}], "max_tokens": 24}
    whole = client.chat.completions.create(model=base_model(main_job), **chat)
    chunks = list(
        client.chat.completions.create(
            **chat, model=whole.model, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 2
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    answerability = {
        "model": "answerability",
        "messages": conversation["messages"],
        "extra_body": {"documents": conversation["documents"]},
        "max_completion_tokens": 16,
    }
    streamed = client.chat.completions.create(**answerability, stream=True)
    intrinsic_text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    as_one = client.chat.completions.create(**answerability)
    assert intrinsic_text == as_one.choices[0].message.content


def test_openai_errors_are_the_sdk_s_typed_exceptions_and_it_keeps_serving(main_job):
    client = openai_client(main_job.url)
    hello = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model="answerability", messages=hello, n=2)
    assert unsupported.value.param == "n", unsupported.value.body
    with pytest.raises(openai.BadRequestError) as unknown_field:
        client.chat.completions.create(
            model="answerability", messages=hello, extra_body={"best_of": 2}
        )
    assert unknown_field.value.param == "best_of" and "remove it" in unknown_field.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="telepathy", messages=hello)
    assert "GET /v1/models" in missing.value.message
    answer = client.chat.completions.create(
        model=base_model(main_job), messages=hello, max_tokens=4
    )
    assert answer.choices[0].message.content  # still serving


def test_mellea_calls_intrinsics_as_on_granite_switch_and_gets_the_native_results(main_job):
    """IBM's Mellea, unmodified, through its OpenAI backend on the base model (adapters
    named in chat_template_kwargs, io.yaml on the client, no Hugging Face access): the
    example prints what the native API returns for the same calls."""
    example = subprocess.run(
        [sys.executable, "-m", "alora_serve.examples.mellea_intrinsics", "--url", main_job.url],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert example.returncode == 0, example.stderr[-3000:]
    printed = dict(line.split(": ", 1) for line in example.stdout.splitlines() if ": " in line)
    with AloraClient(main_job.grpc_target, timeout_s=CALL_TIMEOUT_S) as native:
        question = [("user", mellea_example.QUESTION)]
        answerability = native.run_intrinsic("answerability", question, [mellea_example.DOCUMENT])
        requirement = native.run_intrinsic(
            "requirement_check",
            mellea_example.ANSWER,
            arguments={"requirement": mellea_example.REQUIREMENT},
        )
    assert printed["answerability"] == json.loads(answerability.raw_output)
    likelihood = result_value(requirement)["requirement_likelihood"]
    assert math.isclose(float(printed["requirement_check"]), likelihood, rel_tol=1e-6)


@pytest.mark.parametrize("intrinsic", shipped_intrinsics(EMBEDDED_MODEL_NAME))
def test_the_shipped_intrinsic_beats_the_majority_class_through_the_server(
    main_job, tmp_path, intrinsic
):
    """``alora-serve eval`` on a fixed slice of the held-out MTRAG examples, through the
    main job: each trained intrinsic it serves scores a higher macro-F1 than the majority
    class (the regression test of docs/intrinsics-quality.md)."""
    assert intrinsic in REGRESSION_FLOORS, f"{intrinsic} ships: give it a regression floor"
    majority, floor = REGRESSION_FLOORS[intrinsic]
    train, held_out = EXAMPLES[intrinsic](DATA / "mtrag" / "mtrag_un_reference.jsonl")
    write_examples(tmp_path / "train.jsonl", train)
    write_examples(tmp_path / "slice.jsonl", held_out[:EVAL_SLICE])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "alora_serve.cli", "eval", intrinsic),
            *("--data", str(tmp_path / "slice.jsonl")),
            *("--train-data", str(tmp_path / "train.jsonl")),
            *("--target", main_job.grpc_target, "--url", main_job.url),
            *("--out", str(tmp_path / "report")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    scores = report["overall"]
    assert report["examples"] == EVAL_SLICE and report["majority_class"] == majority
    assert scores["intrinsic"]["macro_f1"] > scores["majority"]["macro_f1"], scores
    assert scores["intrinsic"]["macro_f1"] >= floor, scores
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 0


@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_the_openai_examples_in_the_docs_run_as_written(main_job, page):
    """Each Python example on ``page`` that uses the openai SDK, run twice against the
    main job (its URL in place of the documented one): it runs, and the repeat reuses the
    conversation's KV as its comment says."""
    repo = Path(__file__).resolve().parents[2]
    blocks = re.findall(r"```python\n(.*?)```", (repo / page).read_text(), re.DOTALL)
    (example,) = [b for b in blocks if "openai.OpenAI(" in b]
    script = example.replace("http://127.0.0.1:8000", main_job.url)
    printed = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=repo
        )
        assert done.returncode == 0, done.stderr[-3000:]
        printed.append(done.stdout.split())
    first, repeat = (int(words[-1]) for words in printed)  # cached tokens
    assert repeat > 0 and repeat >= first, printed


def test_ctrl_c_stops_it_cleanly(main_job):  # last: the job is gone afterwards
    tree = psutil.Process(main_job.process.pid).children(recursive=True)
    main_job.process.send_signal(signal.SIGINT)
    rest = main_job.process.stdout.read()
    assert main_job.process.wait(timeout=90) == 0, rest
    assert "Stopping ..." in rest
    assert "Traceback" not in rest, rest
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [p.name() for p in alive]  # no engine is left running
