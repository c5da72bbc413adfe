"""The disaggregated topology on Ray Serve, on a two-node Ray cluster (two raylets with
their own object stores on this machine, talking over loopback TCP):

- node A: the prefill service, and one replica of the merged answerability worker;
- node B: the other merged replica, and the multi-LoRA worker (it must pull KV across).

Prefill and decode run in separate replica processes; results stay exact against PEFT.
The fault tests come last: they kill replicas.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from alora_serve.engine import EngineConfig, SamplingOptions
from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.catalog import Catalog
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.topology.app import build_app
from alora_serve.topology.config import DecodeGroup, PrefillConfig, Scaling, TopologyConfig
from alora_serve.topology.handles import answer
from alora_serve.topology.routing import locality_router_config
from tests.support.conversations import conversation, rag_request, render
from tests.support.peft_adapters import peft_greedy

pytestmark = pytest.mark.engine

APP = "alora-test"
MERGED, LORA = "answerability", ["uncertainty", "query_rewrite"]
INSTRUCTED = "requirement_check"  # on the LoRA worker: a prefix of its own per call
REQUIREMENT = {INSTRUCTED: {"requirement": "The answer names a date."}}
SMALL = EngineConfig(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.25)
NEW_TOKENS = 12
GREEDY = SamplingOptions(max_tokens=NEW_TOKENS, ignore_eos=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    names = [MERGED, *LORA, INSTRUCTED]
    return make_library(resolve_model(None), tmp_path_factory.mktemp("library"), names)


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 3,
            "resources": {"node_a": 8, "merged_slot": 1},
            "object_store_memory": 300 << 20,
        },
    )
    nodes.add_node(
        num_cpus=3, resources={"node_b": 8, "merged_slot": 1}, object_store_memory=300 << 20
    )
    ray.init(address=nodes.address, include_dashboard=False, configure_logging=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def serve_app(cluster, library):
    from ray import serve

    on = lambda node, **kw: Scaling(resources={node: 1}, **kw)  # noqa: E731
    config = TopologyConfig(
        intrinsics=[MERGED, *LORA, INSTRUCTED],
        prefill=PrefillConfig(engine=SMALL, scaling=on("node_a")),
        decode=[
            DecodeGroup(
                name="merged",
                intrinsics=[MERGED],
                engine=SMALL,
                scaling=on("merged_slot", num_replicas=2, max_ongoing_requests=1),
            ),
            DecodeGroup(
                name="checks", intrinsics=[*LORA, INSTRUCTED], engine=SMALL, scaling=on("node_b")
            ),
        ],
        call_timeout_s=120,
    )
    try:
        yield serve.run(build_app(config, library), name=APP, route_prefix=None)
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def colocated_app(serve_app, library):
    from ray import serve

    config = TopologyConfig(
        topology="colocated",
        intrinsics=[MERGED],
        colocated=SMALL,
        colocated_scaling=Scaling(resources={"node_b": 1}),
    )
    yield serve.run(build_app(config, library), name="alora-colocated", route_prefix=None)
    serve.delete("alora-colocated")


def call(names: list[str], request) -> IntrinsicsCall:
    return IntrinsicsCall(intrinsics=names, request=request, tenant="acme")


def handle(name: str, app: str = APP):
    from ray import serve

    return serve.get_deployment_handle(name, app_name=app)


async def replica_stats(name: str) -> dict[str, dict]:
    """Each replica's stats, by node."""
    return await replica_stats_of(name, APP)


async def replica_stats_of(name: str, app: str) -> dict[str, dict]:
    stats = await handle(name, app).broadcast("stats").results_async(timeout_s=30)
    return {entry["node"]: entry for entry in stats}


def prefill_node(stats: dict[str, dict]) -> str:
    return next(iter(stats))


async def exact_invocation(
    worker: str, adapter: str, library, tokenizer, skip: int, app: str = APP
) -> None:
    base = resolve_model(None)
    spec = Catalog.from_library(library, base.name).get(adapter).adapter
    conv = render(tokenizer, conversation(tokenizer, 600, skip=skip))
    prompt = conv + list(spec.invocation_tokens)
    result = await handle(worker, app).invoke.remote(adapter, prompt, GREEDY, "acme")
    assert list(result.token_ids) == peft_greedy(base.path, spec.path, prompt, NEW_TOKENS)


async def test_merged_worker_is_exact_across_processes(serve_app, library, tokenizer):
    await exact_invocation("decode-merged", MERGED, library, tokenizer, skip=30)
    for replica in (await replica_stats("decode-merged")).values():
        assert replica["computed_base_tokens"] == 0  # base KV only comes from the prefill


async def test_lora_worker_on_another_node_pulls_kv_exactly(serve_app, library, tokenizer):
    await exact_invocation("decode-checks", "uncertainty", library, tokenizer, skip=31)
    (checks,) = (await replica_stats("decode-checks")).values()
    prefill = await replica_stats("prefill")
    assert checks["node"] not in prefill  # a real hop: another raylet and object store
    assert checks["transfer"]["pulled_blocks"] > 0
    assert checks["transfer"]["in_place"] == 0 and checks["transfer"]["recomputed"] == 0


async def test_calls_go_to_the_replica_beside_the_kv_when_it_is_free(serve_app, tokenizer):
    kv_node = prefill_node(await replica_stats("prefill"))
    before = await replica_stats("decode-merged")
    for skip in (33, 34, 35):  # one at a time: the local replica is always free
        await serve_app.run_many.remote(call([MERGED], rag_request(tokenizer, 400, skip=skip)))
    after = await replica_stats("decode-merged")
    local = after[kv_node]["transfer"]["in_place"] - before[kv_node]["transfer"]["in_place"]
    assert local == 3
    remote = next(node for node in after if node != kv_node)
    assert after[remote]["transfer"] == before[remote]["transfer"]


async def test_a_busy_local_replica_overflows_to_the_remote_one(serve_app, tokenizer):
    kv_node = prefill_node(await replica_stats("prefill"))
    before = await replica_stats("decode-merged")
    requests = [rag_request(tokenizer, 400, skip=skip) for skip in range(36, 40)]
    results = await asyncio.gather(
        *(serve_app.run_many.remote(call([MERGED], request)) for request in requests)
    )
    assert all(0 <= r[0].result["answerability_likelihood"] <= 1 for r in results)
    after = await replica_stats("decode-merged")
    remote = next(node for node in after if node != kv_node)
    pulled = (
        after[remote]["transfer"]["pulled_blocks"] - before[remote]["transfer"]["pulled_blocks"]
    )
    assert pulled > 0  # max_ongoing_requests=1: some calls went across and pulled


async def test_intrinsics_of_several_workers_share_one_prefill(serve_app, tokenizer):
    request = rag_request(tokenizer, 500, skip=40)
    (before,) = (await replica_stats("prefill")).values()
    results = await serve_app.run_many.remote(call([MERGED, *LORA], request))
    assert [r.name for r in results] == [MERGED, *LORA]
    (after,) = (await replica_stats("prefill")).values()
    # Three intrinsics (none with an instruction) on two workers: one prefix, one fill.
    assert after["fills"] - before["fills"] == 1
    assert after["active_leases"] == 0 and after["store"]["pinned_blocks"] == 0


async def test_a_worker_pulling_several_prefixes_at_once_composes_exactly(serve_app, tokenizer):
    """An intrinsic with an instruction and one without, on the worker of the other node:
    the call pulls both prefixes at once (leases, reads and releases to the prefill service
    together). Before calls between deployments had request identities of their own, only
    the first of them reached the prefill service; the others waited for the lease timeout,
    then the worker computed their base KV itself."""
    names = ["uncertainty", INSTRUCTED]
    request = rag_request(tokenizer, 400, skip=41)
    composed = IntrinsicsCall(
        intrinsics=names, request=request, tenant="acme", arguments=REQUIREMENT
    )
    (before,) = (await replica_stats("decode-checks")).values()
    together = await asyncio.wait_for(serve_app.run_many.remote(composed), 60)
    alone = [(await serve_app.run_many.remote(composed.only([n])))[0] for n in names]
    assert [r.raw_output for r in together] == [r.raw_output for r in alone]
    (after,) = (await replica_stats("decode-checks")).values()
    assert after["transfer"]["pulled_blocks"] > before["transfer"]["pulled_blocks"]
    assert after["transfer"]["recomputed"] == before["transfer"]["recomputed"] == 0


def test_concurrent_calls_from_one_request_to_one_deployment_all_arrive(cluster):
    """What the test above needs from Ray Serve, without engines: a replica serving one
    request makes several calls at once to a deployment behind our router."""
    from ray import serve

    @serve.deployment(
        request_router_config=locality_router_config(), ray_actor_options={"num_cpus": 0}
    )
    class Echo:
        async def echo(self, value: int, delay_s: float = 0.1) -> int:
            await asyncio.sleep(delay_s)
            return value

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Fanout:
        def __init__(self, echo) -> None:
            self.echo = echo

        async def fan(self, n: int, timeout_s: float, delay_s: float = 0.1) -> list:
            calls = (
                answer(self.echo, "echo", i, delay_s, timeout_s=timeout_s, session="one")
                for i in range(n)
            )
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            return [o if isinstance(o, int) else str(o) for o in outcomes]

    fanout = serve.run(Fanout.bind(Echo.bind()), name="fanout", route_prefix=None)
    try:
        assert fanout.fan.remote(5, 20).result(timeout_s=60) == [0, 1, 2, 3, 4]
        (late,) = fanout.fan.remote(1, 0.5, 5).result(timeout_s=60)
        assert "Echo.echo, called from deployment Fanout, did not answer within 0.5" in late
    finally:
        serve.delete("fanout")


async def test_colocated_topology_is_exact_and_serves_intrinsics(colocated_app, library, tokenizer):
    await exact_invocation("colocated", MERGED, library, tokenizer, skip=44, app="alora-colocated")
    request = rag_request(tokenizer, 400, skip=45)
    (result,) = await colocated_app.run_many.remote(call([MERGED], request))
    assert 0 <= result.result["answerability_likelihood"] <= 1
    (stats,) = (await replica_stats_of("colocated", "alora-colocated")).values()
    assert stats["transfer"] is None  # its own store, no transfer layer
    assert stats["computed_base_tokens"] > 0


def kill(replica: dict) -> None:
    """Kill a replica's actor and return once it is dead: `ray.kill` only sends the
    request, and a call routed in the meantime would still reach the old replica."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    actor = ray.get_actor(replica["actor"], namespace="serve")
    ray.kill(actor, no_restart=True)
    for _ in range(120):
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=1)
        except RayActorError:
            return
        except GetTimeoutError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"replica actor {replica['actor']} is still alive after ray.kill")


async def test_a_dead_decode_replica_is_routed_around(serve_app, tokenizer):
    kv_node = prefill_node(await replica_stats("prefill"))
    kill((await replica_stats("decode-merged"))[kv_node])  # the replica calls go to first
    request = rag_request(tokenizer, 400, skip=41)
    results = await asyncio.wait_for(serve_app.run_many.remote(call([MERGED], request)), 120)
    assert 0 <= results[0].result["answerability_likelihood"] <= 1


async def test_prefill_restart_recomputes_and_serves_nothing_wrong(serve_app, library, tokenizer):
    (old,) = (await replica_stats("prefill")).values()
    kill(old)
    await wait_until_serving("prefill")
    (new,) = (await replica_stats("prefill")).values()
    assert new["actor"] != old["actor"] and new["fills"] == 0  # a fresh, empty store
    # A conversation no replica has seen: its KV can only come from the new prefill.
    await exact_invocation("decode-merged", MERGED, library, tokenizer, skip=46)
    (new,) = (await replica_stats("prefill")).values()
    assert new["fills"] == 1  # computed by the restarted service
    # The lora worker on node B still holds the blocks it pulled before: still exact.
    await exact_invocation("decode-checks", "uncertainty", library, tokenizer, skip=31)


async def wait_until_serving(name: str, timeout_s: float = 300) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await asyncio.wait_for(handle(name).stats.remote(), 10)
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(2)
