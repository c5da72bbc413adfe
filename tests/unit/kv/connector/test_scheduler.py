"""The connector's scheduler side, driven the way vLLM's scheduler drives it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alora_serve.kv.connector.metadata import BlockCopy, BlockLoad
from alora_serve.kv.connector.scheduler import ConnectorScheduler
from alora_serve.kv.orders import LoadOrder, SaveOrder, from_params, to_params

BLOCK = 4


def request(rid: str, order=None, prompt_len: int = 12, **extra) -> SimpleNamespace:
    fields = {
        "request_id": rid,
        "kv_transfer_params": to_params(order) if order else None,
        "skip_reading_prefix_cache": False,
        "num_computed_tokens": 0,
        "num_prompt_tokens": prompt_len,
    }
    return SimpleNamespace(**(fields | extra))


def blocks(*ids: int) -> SimpleNamespace:
    return SimpleNamespace(get_block_ids=lambda: (list(ids),))


LOAD = LoadOrder(num_tokens=10, slots=(7, 8, 9), tags=(-1, -2, -3))


def test_load_covers_exactly_the_prefix_blocks() -> None:
    side = ConnectorScheduler(BLOCK)
    req = request("r", LOAD, prompt_len=14)
    assert side.get_num_new_matched_tokens(req, 0) == (10, False)
    side.update_state_after_alloc(req, blocks(40, 41, 42, 43), 10)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"r": 4}))
    assert meta.loads == [
        BlockLoad([BlockCopy(40, 7, -1), BlockCopy(41, 8, -2), BlockCopy(42, 9, -3)])
    ]
    assert meta.failed_block_ids == []


def test_local_hit_shortens_the_load() -> None:
    side = ConnectorScheduler(BLOCK)
    req = request("r", LOAD, prompt_len=14)
    assert side.get_num_new_matched_tokens(req, 4) == (6, False)
    side.update_state_after_alloc(req, blocks(40, 41, 42, 43), 6)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={}))
    assert [c.block_id for c in meta.loads[0].copies] == [41, 42]


def test_a_fill_loads_its_stored_head_and_saves_the_rest() -> None:
    side = ConnectorScheduler(BLOCK)
    head = LoadOrder(num_tokens=BLOCK, slots=(7,), tags=(-1,))
    fill = SaveOrder(blocks=(1, 2), slots=(8, 9), tags=(-2, -3), preload=head)
    req = request("f", fill, prompt_len=3 * BLOCK, num_computed_tokens=BLOCK)
    side.bind_kv_cache_manager(SimpleNamespace(get_blocks=lambda _: blocks(40, 41, 42)))
    assert side.get_num_new_matched_tokens(req, 0) == (BLOCK, False)
    side.update_state_after_alloc(req, blocks(40, 41, 42), BLOCK)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"f": 2 * BLOCK}))
    assert meta.loads == [BlockLoad([BlockCopy(40, 7, -1)])]
    assert meta.saves == [BlockCopy(41, 8, -2), BlockCopy(42, 9, -3)]


def test_orders_survive_serialisation() -> None:
    fill = SaveOrder((1,), (8,), (-2,), preload=LoadOrder(4, (7,), (-1,), arena="/a"))
    assert from_params(to_params(fill)) == fill
    assert from_params(to_params(fill.preload)) == fill.preload


def test_load_from_another_engines_arena_names_it() -> None:
    side = ConnectorScheduler(BLOCK)
    order = LoadOrder(num_tokens=4, slots=(3,), tags=(-5,), arena="/dev/shm/alora-kv-1-x")
    req = request("r", order, prompt_len=6)
    side.get_num_new_matched_tokens(req, 0)
    side.update_state_after_alloc(req, blocks(9, 10), 4)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"r": 2}))
    assert meta.loads == [BlockLoad([BlockCopy(9, 3, -5)], "/dev/shm/alora-kv-1-x")]


def test_local_hit_past_s_loads_nothing() -> None:
    side = ConnectorScheduler(BLOCK)
    assert side.get_num_new_matched_tokens(request("r", LOAD), 12) == (0, False)


@pytest.mark.parametrize(
    ("external", "skip_cache"),
    [(3, False), (0, True)],  # a partial external hit; vLLM skipping the cache read
)
def test_anything_short_of_the_whole_prefix_fails_the_request(external, skip_cache) -> None:
    side = ConnectorScheduler(BLOCK)
    req = request("r", LOAD, skip_reading_prefix_cache=skip_cache)
    side.get_num_new_matched_tokens(req, 0)
    side.update_state_after_alloc(req, blocks(40, 41, 42), external)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={}))
    assert meta.loads == []
    assert meta.failed_block_ids == [40, 41, 42]


def test_base_requests_are_untouched() -> None:
    side = ConnectorScheduler(BLOCK)
    req = request("r")
    assert side.get_num_new_matched_tokens(req, 0) == (0, False)
    side.update_state_after_alloc(req, blocks(1), 0)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"r": 12}))
    assert (meta.loads, meta.saves, meta.failed_block_ids) == ([], [], [])


def test_save_waits_for_the_last_prefill_chunk() -> None:
    side = ConnectorScheduler(BLOCK)
    manager = SimpleNamespace(get_blocks=lambda rid: blocks(10, 11, 12))
    side.bind_kv_cache_manager(manager)
    req = request("s", SaveOrder(blocks=(1, 2), slots=(5, 6), tags=(3, 4)), prompt_len=10)
    side.get_num_new_matched_tokens(req, 0)
    side.update_state_after_alloc(req, blocks(10, 11, 12), 0)

    first = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"s": 6}))
    assert first.saves == []  # chunked prefill: 6 of 10 tokens
    req.num_computed_tokens = 6
    second = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"s": 4}))
    assert second.saves == [BlockCopy(11, 5, 3), BlockCopy(12, 6, 4)]
    third = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"s": 1}))
    assert third.saves == []  # saved once


def test_finished_requests_leave_no_state() -> None:
    side = ConnectorScheduler(BLOCK)
    load, save = request("l", LOAD), request("s", SaveOrder((0,), (1,), (2,)))
    for req in (load, save):
        side.get_num_new_matched_tokens(req, 0)
        side.update_state_after_alloc(req, blocks(40, 41, 42), 0)
        side.request_finished(req)
    assert side._savers == {}


def test_asking_for_matched_tokens_changes_nothing() -> None:
    """vLLM may ask more than once, or ask and then not schedule the request."""
    side = ConnectorScheduler(BLOCK)
    fill = SaveOrder(blocks=(1,), slots=(8,), tags=(-2,), preload=LOAD)
    for req in (request("r", LOAD, prompt_len=14), request("f", fill, prompt_len=14)):
        for _ in range(3):
            assert side.get_num_new_matched_tokens(req, 0) == (10, False)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"r": 14, "f": 14}))
    assert (meta.loads, meta.saves, meta.failed_block_ids) == ([], [], [])


def test_a_local_hit_reaching_s_is_accepted_after_allocation() -> None:
    side = ConnectorScheduler(BLOCK)
    req = request("r", LOAD)
    assert side.get_num_new_matched_tokens(req, 12) == (0, False)
    side.update_state_after_alloc(req, blocks(40, 41, 42), 0)
    meta = side.build_connector_meta(SimpleNamespace(num_scheduled_tokens={"r": 1}))
    assert (meta.loads, meta.failed_block_ids) == ([], [])
