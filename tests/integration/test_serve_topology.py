"""The disaggregated topology on Ray Serve: prefill service and decode workers in separate
replica processes, exact against PEFT across the transfer path."""

from __future__ import annotations

import pytest

from alora_serve.engine import EngineConfig, SamplingOptions
from alora_serve.intrinsics.synthetic_library import make_library
from alora_serve.model import resolve_model
from alora_serve.topology.app import build_app
from alora_serve.topology.config import DecodeGroup, PrefillConfig, TopologyConfig
from tests.support.conversations import conversation, rag_request, render
from tests.support.peft_adapters import peft_greedy

pytestmark = pytest.mark.engine

APP = "alora-test"
MERGED, LORA = "answerability", ["uncertainty", "query_rewrite"]
SMALL = EngineConfig(max_model_len=4096, kv_cache_gib=0.5, kv_store_gib=0.25)
GREEDY = SamplingOptions(max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_library(resolve_model(None), tmp_path_factory.mktemp("library"), [MERGED, *LORA])


@pytest.fixture(scope="module")
def serve_app(library):
    import ray
    from ray import serve

    config = TopologyConfig(
        intrinsics=[MERGED, *LORA],
        prefill=PrefillConfig(engine=SMALL),
        decode=[
            DecodeGroup(name="merged", intrinsics=[MERGED], engine=SMALL),
            DecodeGroup(name="checks", intrinsics=LORA, engine=SMALL),
        ],
    )
    ray.init(num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        ingress = serve.run(build_app(config, library), name=APP, route_prefix=None)
        yield ingress
    finally:
        serve.shutdown()
        ray.shutdown()


def handle(name: str):
    from ray import serve

    return serve.get_deployment_handle(name, app_name=APP)


def adapter_dir(library, name: str):
    return library / name / resolve_model(None).name / "alora"


async def invoke_and_compare(worker: str, adapter: str, library, tokenizer, skip: int):
    from alora_serve.intrinsics.catalog import Catalog

    spec = Catalog.from_library(library, resolve_model(None).name).get(adapter).adapter
    prompt = render(tokenizer, conversation(tokenizer, 600, skip=skip)) + list(
        spec.invocation_tokens
    )
    result = await handle(worker).invoke.remote(adapter, prompt, GREEDY, "acme")
    expected = peft_greedy(resolve_model(None).path, adapter_dir(library, adapter), prompt, 12)
    assert list(result.token_ids) == expected


async def test_merged_decode_worker_is_exact_across_processes(serve_app, library, tokenizer):
    await invoke_and_compare("decode-merged", MERGED, library, tokenizer, skip=30)
    stats = await handle("decode-merged").stats.remote()
    assert stats["transfer"]["in_place"] >= 1  # read the prefill replica's arena in place
    assert stats["fills"] == 0  # and computed no base KV itself


async def test_lora_decode_worker_is_exact_across_processes(serve_app, library, tokenizer):
    await invoke_and_compare("decode-checks", "uncertainty", library, tokenizer, skip=31)


async def test_intrinsics_of_several_workers_share_one_prefill(serve_app, tokenizer):
    request = rag_request(tokenizer, 500, skip=32)
    before = (await handle("prefill").stats.remote())["fills"]
    results = await serve_app.run_many.remote([MERGED, *LORA], request, "acme")
    assert [r.name for r in results] == [MERGED, *LORA]
    after = await handle("prefill").stats.remote()
    # One conversation prefix and query_rewrite's instruction: two fills, each block once.
    assert after["fills"] - before <= 2
    assert after["active_leases"] == 0
    assert after["store"]["pinned_blocks"] == 0
