"""The load test's parts that need no server: conversations, profiles, samples, the
command it runs, and the loopback rule."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from alora_serve.loadtest.conversations import load_conversations, turn_arguments
from alora_serve.loadtest.profiles import (
    PROFILES,
    CallMix,
    LoadProfile,
    Pacer,
    Stage,
    stage_windows,
)
from alora_serve.loadtest.report import plot
from alora_serve.loadtest.runner import LoadRun, require_loopback
from alora_serve.loadtest.samples import Sample, Samples, capacity, summarize, summarize_stages
from bench.table import loadtest_table
from tests.support.conversations import MTRAG


def test_mtrag_tasks_become_conversations_with_turns_in_order() -> None:
    conversations = load_conversations(MTRAG)
    assert len(conversations) == 430  # here, one task (its latest turn) per conversation
    longest = max(conversations, key=lambda c: len(c.turns))
    assert len(longest.turns) >= 5
    first = longest.turns[0].question
    task = next(
        json.loads(line)
        for line in MTRAG.read_text().splitlines()
        if json.loads(line)["conversation_id"] == longest.conversation_id
    )
    assert first == next(t["text"] for t in task["input"] if t["speaker"] == "user")
    assert all(turn.question and turn.documents for turn in longest.turns)
    assert {c.domain for c in conversations} >= {"govt", "clapnq", "ibmcloud"}


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no MTRAG tasks"):
        load_conversations(empty)


@pytest.mark.parametrize("target", ["127.0.0.1:50051", "localhost:1", "[::1]:50051"])
def test_loopback_targets_are_accepted(target: str) -> None:
    require_loopback(target)


@pytest.mark.parametrize("target", ["10.0.0.5:50051", "example.com:443", "0.0.0.0:50051"])
def test_any_other_target_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(target)


def test_every_profile_is_bounded_and_mixes_are_checked() -> None:
    assert set(PROFILES) == {"smoke", "capacity", "overload", "soak", "ramp"}
    assert PROFILES["soak"].run_time_s >= 1800
    with pytest.raises(ValidationError):
        CallMix(single_weight=0, composed_weight=0)
    with pytest.raises(ValidationError, match="at least one stage needs users"):
        LoadProfile(stages=[Stage(users=0, duration_s=60)], spawn_rate=1, max_calls=10)
    with pytest.raises(ValidationError, match="at most 4 h"):
        LoadProfile(stages=[Stage(users=1, duration_s=5 * 3600)], spawn_rate=1, max_calls=10)


def test_overrides_scale_every_stage_in_proportion() -> None:
    overload = PROFILES["overload"]  # light, busy, light (draining), light
    scaled = overload.with_users(12).with_run_time(overload.run_time_s * 2)
    assert [s.users for s in scaled.stages] == [1, 12, 1, 1]
    assert [s.duration_s for s in scaled.stages] == [2 * s.duration_s for s in overload.stages]
    assert scaled.users == 12 and scaled.run_time_s == 2 * overload.run_time_s
    idle = LoadProfile(
        stages=[Stage(users=4, duration_s=30), Stage(users=0, duration_s=30)],
        spawn_rate=1,
        max_calls=10,
    )
    assert [s.users for s in idle.with_users(8).stages] == [8, 0]


def test_a_shortened_run_settles_within_every_stage() -> None:
    """Found by review: `--profile smoke --run-time 10` kept the 10 s settle in a 10 s
    stage, and summarizing the stage divided by zero."""
    smoke = PROFILES["smoke"].with_run_time(10)
    assert smoke.run_time_s == 10 and 0 < smoke.settle_s < 10
    assert smoke.settle_s == pytest.approx(10 * 10 / 60)
    kept = [Sample("RunIntrinsic/answerability", 1000.0 + t, 0.5, "OK") for t in range(10)]
    (stage,) = summarize_stages(kept, smoke.plan(), smoke.settle_s, smoke.slo_intrinsic_p95_s)
    assert stage["calls"] == 8 and stage["measured_s"] == pytest.approx(10 - smoke.settle_s)
    capacity_ = PROFILES["capacity"].with_run_time(10)  # every stage at its 5 s floor
    assert capacity_.settle_s < min(s.duration_s for s in capacity_.stages)
    soak = PROFILES["soak"]
    assert soak.with_run_time(2 * soak.run_time_s).settle_s == soak.settle_s
    with pytest.raises(ValidationError, match="shorter than the shortest stage"):
        LoadProfile(stages=[Stage(users=1, duration_s=10)], spawn_rate=1, max_calls=10)


def test_overrides_that_leave_nothing_to_run_are_refused() -> None:
    smoke = PROFILES["smoke"]
    with pytest.raises(ValueError, match="at least one user"):
        smoke.with_users(0)
    with pytest.raises(ValueError, match="at least a second"):
        smoke.with_run_time(0)
    with pytest.raises(ValidationError, match="less than or equal to 512"):
        smoke.with_users(1000)  # scaled copies are validated too


def test_shares_of_capacity_become_rates_and_need_the_capacity() -> None:
    overload = PROFILES["overload"]
    assert [s["turns_per_s"] for s in overload.plan(0.5)] == pytest.approx([0.15, 1.5, 0.15, 0.15])
    with pytest.raises(ValueError, match="--capacity"):
        overload.plan()
    assert [s["turns_per_s"] for s in PROFILES["capacity"].plan()] == [None] * 7


def _paced_starts(pacer: Pacer, stage: dict, turn_s: float, turns: int, now: float) -> list:
    """When a user following ``pacer`` starts ``turns`` turns that take ``turn_s`` each,
    the first at ``now``."""
    starts = []
    for _ in range(turns):
        starts.append(now)
        now += turn_s
        now += pacer.pause_s(stage, starts[-1], now)
    return starts


def test_paced_users_start_turns_at_the_offered_rate_whatever_a_turn_takes() -> None:
    """Found by review: waiting what was left of a gap after the turn made the gap between
    starts max(turn, gap), 20% below the offered rate for 4 s turns and 5 s gaps."""
    stage = {"users": 10, "duration_s": 60, "turns_per_s": 2.0}  # a turn per user every 5 s
    for turn_s in (0.0, 4.0):
        starts = _paced_starts(Pacer(random.Random(7), CallMix()), stage, turn_s, 20_000, 0.0)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert statistics.fmean(gaps) == pytest.approx(5.0, rel=0.03)
    quick = _paced_starts(Pacer(random.Random(7), CallMix()), stage, 0.0, 20_000, 0.0)
    gaps = [b - a for a, b in itertools.pairwise(quick)]
    assert statistics.median(gaps) == pytest.approx(5.0 * math.log(2), rel=0.05)  # exponential
    pacer = Pacer(random.Random(7), CallMix(think_s=(0.5, 2.0)))
    closed = [pacer.pause_s({**stage, "turns_per_s": None}, 0.0, 9.0) for _ in range(1000)]
    assert min(closed) >= 0.5 and max(closed) <= 2.0


def test_a_new_stage_paces_afresh_from_the_turn_just_made() -> None:
    """A user far behind a busy stage's plan does not rush the next stage's turns."""
    busy = {"users": 1, "duration_s": 60, "turns_per_s": 1.0}
    calm = {"users": 1, "duration_s": 60, "turns_per_s": 0.001}
    rushed = 0
    for seed in range(200):
        pacer = Pacer(random.Random(seed), CallMix())
        now = _paced_starts(pacer, busy, 10.0, 50, 0.0)[-1] + 10.0  # ~450 s behind
        rushed += pacer.pause_s(calm, now - 10.0, now) == 0.0
    assert rushed < 10  # a calm gap shorter than the 10 s turn: about 1 in 100


def test_stage_windows_walk_the_plan_from_its_start() -> None:
    plan = [{"users": 1, "duration_s": 60}, {"users": 4, "duration_s": 30}]
    assert stage_windows(plan, 100.0) == [(plan[0], 100.0, 160.0), (plan[1], 160.0, 190.0)]
    assert stage_windows(plan)[1][1:] == (60.0, 90.0)


def test_the_command_carries_every_bound_and_option(tmp_path: Path) -> None:
    load = LoadRun("127.0.0.1:50051", PROFILES["smoke"], tmp_path, MTRAG, verify_composed=True)
    command = load.command()
    assert command[:4] == [sys.executable, "-m", "locust", "-f"]
    options = _locust_options(command[5:])
    assert options.headless and options.spawn_rate == 1 and options.max_calls == 400
    assert options.exit_code_on_error == 0  # statuses are judged from the samples
    assert options.host == "127.0.0.1:50051" and options.mtrag == str(MTRAG)
    stages = json.loads(command[command.index("--stages") + 1])
    assert stages == [{"users": 2, "duration_s": 60, "turns_per_s": None}]
    assert "--verify-composed" in command
    mix = json.loads(command[command.index("--call-mix") + 1])
    assert mix["composed"] == ["answerability", "uncertainty", "context_relevance"]


def test_summaries_use_exact_samples_per_call_type() -> None:
    samples = Samples()
    for i in range(100):  # 0.001 s .. 0.100 s: Locust would round none of these alike
        samples.add(Sample("RunIntrinsic/answerability", 1000.0 + i, (i + 1) / 1000, "OK"))
    samples.add(Sample("RunIntrinsic/answerability", 1100.0, 9.0, "RESOURCE_EXHAUSTED"))
    samples.add(Sample("Generate/total", 1050.0, 0.5, "OK"))
    summary = summarize(samples.kept, slo_intrinsic_p95_s=0.05)
    intrinsic = summary["by_type"]["RunIntrinsic/answerability"]
    assert (intrinsic["calls"], intrinsic["errors"]) == (101, 1)
    assert intrinsic["p50_s"] == pytest.approx(0.0505)
    assert intrinsic["max_s"] == pytest.approx(0.1)  # of the successes
    assert summary["refusals"] == {
        "calls": 1,
        **{key: 9.0 for key in ("p50_s", "p95_s", "p99_s", "max_s")},
    }
    assert intrinsic["p99_s"] == pytest.approx(0.09901, abs=1e-4)
    assert summary["errors_by_code"] == {"RESOURCE_EXHAUSTED": 1}
    assert summary["goodput"]["fraction"] == pytest.approx(50 / 101)
    assert summary["duration_s"] == pytest.approx(109.0)


def test_samples_round_trip_through_jsonl(tmp_path: Path) -> None:
    samples = Samples()
    samples.add(Sample("Generate/first token", 1.5, 0.25, "OK"))
    samples.write(tmp_path / "s.jsonl")
    assert Samples.read(tmp_path / "s.jsonl").kept == samples.kept


def _stepped_run() -> list[Sample]:
    """Two stages of 60 s from t=1000: a calm one (1 s calls) and one where the
    intrinsic calls slow to 8 s and some are refused."""
    kept = []
    for second in range(60):
        kept.append(Sample("RunIntrinsic/answerability", 1000.0 + second, 1.0, "OK"))
        kept.append(Sample("Generate/total", 1000.0 + second, 2.0, "OK"))
    for second in range(60):
        code = "RESOURCE_EXHAUSTED" if second % 10 == 0 else "OK"
        kept.append(Sample("RunIntrinsic/answerability", 1060.0 + second, 8.0, code))
        kept.append(Sample("RunIntrinsic/answerability", 1060.5 + second, 8.0, "OK"))
    return kept


def test_stages_are_summarized_apart_and_capacity_is_the_busiest_healthy_one() -> None:
    stages = [{"users": 1, "duration_s": 60}, {"users": 4, "duration_s": 60}]
    summaries = summarize_stages(_stepped_run(), stages, settle_s=10, slo_intrinsic_p95_s=5)
    calm, busy = summaries
    assert calm["calls"] == 2 * 50 and calm["intrinsic_calls_per_s"] == pytest.approx(1.0)
    assert calm["intrinsic_p95_s"] == pytest.approx(1.0) and not calm["errors_by_code"]
    assert busy["intrinsic_calls_per_s"] == pytest.approx(2.0)
    assert busy["errors_by_code"] == {"RESOURCE_EXHAUSTED": 5}
    # the busy stage is busier but fails (errors, p95 over the SLO): capacity is the calm one
    assert capacity(summaries, slo_intrinsic_p95_s=5) == {
        "users": 1,
        "per_s": pytest.approx(2.0),
        "intrinsic_calls_per_s": pytest.approx(1.0),
        "intrinsic_p95_s": pytest.approx(1.0),
    }
    assert capacity(summaries[1:], slo_intrinsic_p95_s=5) is None
    # a stage that passes after one that failed does not count
    assert capacity([*summaries, calm], slo_intrinsic_p95_s=5)["users"] == 1


def test_a_stage_keeps_its_planned_duration_apart_from_the_window_measured() -> None:
    stages = [{"users": 1, "duration_s": 60, "turns_per_s": None}] * 2
    calm, _ = summarize_stages(_stepped_run(), stages, settle_s=10, slo_intrinsic_p95_s=5)
    assert calm["duration_s"] == 60 and calm["measured_s"] == pytest.approx(50.0)
    assert calm["per_s"] == pytest.approx(2.0)  # over the measured window


def test_a_stage_without_calls_is_summarized_like_any_other() -> None:
    """Found by review: the call cap ends a run before its last stage, whose empty summary
    lacked the figures the results table reads ("refusals")."""
    stages = [{"users": 1, "duration_s": 60, "turns_per_s": None}] * 3
    summaries = summarize_stages(_stepped_run(), stages, settle_s=10, slo_intrinsic_p95_s=5)
    empty = summaries[-1]
    assert set(empty) == set(summaries[0])
    assert (empty["calls"], empty["per_s"], empty["refusals"]["calls"]) == (0, 0.0, 0)
    assert empty["goodput"]["fraction"] is None and empty["intrinsic_p95_s"] is None
    assert set(summarize([], 5.0)) == set(summarize(_stepped_run(), 5.0))
    table = loadtest_table({"stages": summaries})
    assert table.splitlines()[-1].startswith("| 3 | 1 | closed loop | 0.000 | - |")
    assert table.splitlines()[-2].endswith("| 5 (8.00 s) | 0 |")  # refusals apart


def test_turns_without_documents_ask_nothing_about_a_document() -> None:
    """Found by the capacity run: a third of MTRAG's turns retrieved no document, and the
    composed call then sent context_relevance without one (INVALID_ARGUMENT)."""
    composed = ["answerability", "uncertainty", "context_relevance"]
    documents = ({"doc_id": "7", "text": "The tower is 330 m tall."},)
    assert turn_arguments(composed, documents) == {
        "answerability": {},
        "uncertainty": {},
        "context_relevance": {"document_content": "The tower is 330 m tall."},
    }
    assert turn_arguments(composed, ()) == {"answerability": {}, "uncertainty": {}}
    empty = [c for c in load_conversations(MTRAG) for t in c.turns if not t.documents]
    assert empty  # the data has such turns


def test_a_stepped_run_is_plotted_with_its_stages(tmp_path: Path) -> None:
    stages = [{"users": 1, "duration_s": 60, "turns_per_s": None}] * 2
    metrics = [{"t": 1000.0 + t, "replicas": {"prefill": 1.0}} for t in range(0, 120, 5)]
    memory = [{"t": 1000.0 + t, "VLLM::Worker (1)": 2**30} for t in range(0, 120, 5)]
    plot(_stepped_run(), stages, (metrics, memory), tmp_path / "run.png")
    with Image.open(tmp_path / "run.png") as image:
        assert image.format == "PNG" and image.size == (1100, 1210)  # 10 x 11 in at 110 dpi
        darkest, lightest = image.convert("L").getextrema()
        assert darkest < 100 < lightest  # drawn on, not blank


def _locust_options(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the options Locust and the locustfile define (not Locust's own
    parser: importing Locust patches this process for gevent)."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    for flag in ("--headless", "--only-summary", "--verify-composed"):
        parser.add_argument(flag, action="store_true")
    for flag in ("--spawn-rate", "--stop-timeout"):
        parser.add_argument(flag, type=float)
    for flag in ("--exit-code-on-error", "--max-calls"):
        parser.add_argument(flag, type=int)
    for flag in ("--host", "--stages", "--csv", "--html", "--mtrag", "--call-mix", "--token"):
        parser.add_argument(flag)
    parser.add_argument("--tls-ca")
    parser.add_argument("--samples-out")
    return parser.parse_args(argv)
