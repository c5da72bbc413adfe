"""The load test's parts that need no server: conversations, profiles, samples, the
command it runs, and the loopback rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from alora_serve.loadtest.conversations import load_conversations
from alora_serve.loadtest.profiles import PROFILES, CallMix, LoadProfile
from alora_serve.loadtest.runner import LoadRun, require_loopback
from alora_serve.loadtest.samples import Sample, Samples, summarize
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
    assert set(PROFILES) == {"smoke", "capacity", "overload", "soak"}
    assert PROFILES["soak"].run_time_s >= 1800
    with pytest.raises(ValidationError):
        CallMix(single_weight=0, composed_weight=0)
    with pytest.raises(ValidationError):
        LoadProfile(users=0, spawn_rate=1, run_time_s=60, max_calls=10)


def test_the_command_carries_every_bound_and_option(tmp_path: Path) -> None:
    load = LoadRun("127.0.0.1:50051", PROFILES["smoke"], tmp_path, MTRAG, verify_composed=True)
    command = load.command()
    joined = " ".join(command)
    for part in ("--headless", "--users 2", "--run-time 60s", "--max-calls 400"):
        assert part in joined
    assert "--verify-composed" in command
    mix = json.loads(command[command.index("--call-mix") + 1])
    assert mix["composed"] == ["answerability", "uncertainty", "context_relevance"]


def test_summaries_use_exact_samples_per_call_type() -> None:
    samples = Samples()
    for i in range(100):  # 0.001 s .. 0.100 s: Locust would round none of these alike
        samples.add(Sample("RunIntrinsic/answerability", 1000.0 + i, (i + 1) / 1000, "OK"))
    samples.add(Sample("RunIntrinsic/answerability", 1100.0, 9.0, "RESOURCE_EXHAUSTED"))
    samples.add(Sample("Generate/total", 1050.0, 0.5, "OK"))
    summary = summarize(samples, slo_intrinsic_p95_s=0.05)
    intrinsic = summary["by_type"]["RunIntrinsic/answerability"]
    assert (intrinsic["calls"], intrinsic["errors"]) == (101, 1)
    assert intrinsic["p50_s"] == pytest.approx(0.0505)
    assert intrinsic["p99_s"] == pytest.approx(0.09901, abs=1e-4)
    assert summary["errors_by_code"] == {"RESOURCE_EXHAUSTED": 1}
    assert summary["goodput"]["fraction"] == pytest.approx(50 / 101)
    assert summary["duration_s"] == pytest.approx(109.0)


def test_samples_round_trip_through_jsonl(tmp_path: Path) -> None:
    samples = Samples()
    samples.add(Sample("Generate/first token", 1.5, 0.25, "OK"))
    samples.write(tmp_path / "s.jsonl")
    assert Samples.read(tmp_path / "s.jsonl").kept == samples.kept
